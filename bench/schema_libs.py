"""Which library reads the declared bodies: measured on the same bytes (`make bench-schema`).

(a) a batch of 100 realistic events: today's path (orjson.loads, then validation.normalize_event per
    event) against msgspec (msgspec.json.decode into the declared Event Struct list) and pydantic v2
    (TypeAdapter(list[Model]).validate_json) — decoding and type checks only, the latter two do none of
    normalize_event's other work (clock skew, NUL and depth checks, serializing properties);
(b) one feature-flag definition body (variants and targeting): orjson.loads + flags.definition
    .parse_flag_definition against msgspec and pydantic reading it into the declared FlagDefinition.

A CPU microbenchmark of a few seconds (stdlib timeit, best of REPEAT); prints µs per event / per body.
pydantic is not a dependency of the project: it is measured when installed (Dagster brings it).
"""

from __future__ import annotations

import platform
import timeit
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import msgspec
import orjson

from eventtrack.clock import parse_timestamp
from ingest_api.admin.schemas import FlagDefinition
from ingest_api.flags.definition import KEY_PATTERN, MAX_KEY_LENGTH, parse_flag_definition
from ingest_api.routes.schemas import Event
from ingest_api.validation import (
    MAX_ID_LENGTH,
    Limits,
    distinct_id_field,
    normalize_event,
    optional_string,
    required_string,
)

REPEAT = 7
EVENTS = 100


def batch_bytes() -> bytes:
    now = datetime.now(UTC)
    events = [
        {
            "distinct_id": f"user-{i % 37}",
            "event_type": ("app_open", "view_item", "add_to_cart", "purchase")[i % 4],
            "properties": {
                "screen": "home",
                "item_id": i * 7,
                "price": 9.99,
                "tags": ["a", "b"],
                "cart": {"items": 3, "currency": "EUR"},
            },
            "device_id": f"device-{i % 11}",
            "session_id": str(uuid.UUID(int=i)),
            "app_version": "2.3.1",
            "os_name": "iOS",
            "os_version": "17.2",
            "timestamp": (now - timedelta(seconds=i)).isoformat(),
            "uuid": str(uuid.uuid4()),
        }
        for i in range(EVENTS)
    ]
    return orjson.dumps(events)


FLAG_BODY = orjson.dumps(
    {
        "key": "new-checkout",
        "name": "New checkout",
        "description": "The one-page checkout",
        "active": True,
        "rollout_percentage": 50,
        "variants": [
            {"key": "control", "rollout_percentage": 50},
            {"key": "one-page", "rollout_percentage": 50, "payload": {"color": "blue"}},
        ],
        "conditions": [
            {
                "properties": [
                    {"key": "country", "operator": "in", "value": ["FR", "DE"]},
                    {"key": "app_version", "operator": "semver_gte", "value": "2.0.0"},
                ],
                "rollout_percentage": 100,
                "variant": "one-page",
            }
        ],
    }
)


def best_us(fn, number: int, per: int) -> float:
    """Best of REPEAT runs of `number` calls, in µs per item (`per` items per call)."""
    return min(timeit.repeat(fn, number=number, repeat=REPEAT)) / number / per * 1e6


def pydantic_readers():
    """pydantic v2 models equal to the declared Structs (same constraints), or None when not installed."""
    try:
        from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
    except ImportError:
        return None
    Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
    OptionalId = Annotated[str, Field(max_length=MAX_ID_LENGTH)] | None

    class PEvent(BaseModel):
        distinct_id: Id | int
        event_type: Id
        event: Id | None = None
        properties: dict[str, Any] | None = None
        device_id: OptionalId = None
        session_id: OptionalId = None
        app_version: OptionalId = None
        os_name: OptionalId = None
        os_version: OptionalId = None
        timestamp: datetime | None = None
        sent_at: datetime | None = None
        uuid: UUID | None = None

    Percentage = Annotated[float, Field(ge=0, le=100)]
    Strict = ConfigDict(extra="forbid")

    class PFilter(BaseModel):
        model_config = Strict
        key: str
        operator: str
        value: Any = None

    class PVariant(BaseModel):
        model_config = Strict
        key: str
        rollout_percentage: Percentage
        payload: Any = None

    class PGroup(BaseModel):
        model_config = Strict
        properties: list[PFilter] | None = None
        rollout_percentage: Percentage | None = None
        variant: str | None = None

    class PFlag(BaseModel):
        model_config = Strict
        key: Annotated[str, Field(pattern=f"^{KEY_PATTERN}$", max_length=MAX_KEY_LENGTH)] | None = None
        name: str | None = None
        description: str | None = None
        active: bool = True
        rollout_percentage: Percentage = 0
        variants: list[PVariant] | None = None
        conditions: list[PGroup] | None = None
        payload: Any = None

    return TypeAdapter(list[PEvent]), TypeAdapter(PFlag)


def main() -> None:
    body = batch_bytes()
    received_at = datetime.now(UTC)
    limits = Limits(
        max_event_bytes=32 * 1024,
        max_properties_depth=32,
        max_future=timedelta(hours=24),
        oldest_allowed=received_at - timedelta(days=365),
    )

    def today() -> None:
        for raw in orjson.loads(body):
            normalize_event(raw, received_at=received_at, batch_sent_at=None, limits=limits, sanitize=False)

    parsed = orjson.loads(body)
    optional = ("device_id", "session_id", "app_version", "os_name", "os_version")

    def type_checks() -> None:
        # The part of normalize_event a typed decode does itself: the string fields, the uuid, the timestamp.
        errors: dict[str, str] = {}
        for raw in parsed:
            distinct_id_field(raw["distinct_id"], errors, False)
            required_string(raw["event_type"], "event_type", errors, False)
            for name in optional:
                optional_string(raw.get(name), name, errors, False)
            uuid.UUID(raw["uuid"])
            parse_timestamp(raw["timestamp"])

    events_decoder = msgspec.json.Decoder(list[Event])
    flag_decoder = msgspec.json.Decoder(FlagDefinition)
    assert len(events_decoder.decode(body)) == EVENTS
    rows: list[tuple[str, float]] = [
        ("orjson.loads only (no validation)", best_us(lambda: orjson.loads(body), 200, EVENTS)),
        ("today: orjson.loads + normalize_event", best_us(today, 200, EVENTS)),
        ("  of which type checks a typed decode would do", best_us(type_checks, 200, EVENTS)),
        ("msgspec.json.decode(list[Event])", best_us(lambda: events_decoder.decode(body), 200, EVENTS)),
    ]
    flag_rows: list[tuple[str, float]] = [
        (
            "today: orjson.loads + parse_flag_definition",
            best_us(lambda: parse_flag_definition(orjson.loads(FLAG_BODY)), 2000, 1),
        ),
        ("msgspec.json.decode(FlagDefinition)", best_us(lambda: flag_decoder.decode(FLAG_BODY), 2000, 1)),
    ]
    readers = pydantic_readers()
    if readers is not None:
        import pydantic

        events_adapter, flag_adapter = readers
        assert len(events_adapter.validate_json(body)) == EVENTS
        rows.append(
            (
                f"pydantic {pydantic.VERSION} validate_json(list[Model])",
                best_us(lambda: events_adapter.validate_json(body), 200, EVENTS),
            )
        )
        flag_rows.append(
            (
                f"pydantic {pydantic.VERSION} validate_json(Model)",
                best_us(lambda: flag_adapter.validate_json(FLAG_BODY), 2000, 1),
            )
        )
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, msgspec {msgspec.__version__}")
    print(f"(a) a batch of {EVENTS} events, {len(body)} bytes: µs per event (best of {REPEAT})")
    for name, us in rows:
        print(f"  {name:<52} {us:8.2f}")
    print(f"(b) a feature-flag definition, {len(FLAG_BODY)} bytes: µs per body (best of {REPEAT})")
    for name, us in flag_rows:
        print(f"  {name:<52} {us:8.2f}")


if __name__ == "__main__":
    main()
