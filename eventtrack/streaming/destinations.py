"""Webhook destinations: their definition (one set of rules for the admin API) and the queries of the
delivery worker (eventtrack/streaming/deliver.py) and of the lag the dashboard and /metrics show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from eventtrack.analytics.segments import SegmentError, parse_filters
from eventtrack.streaming.horizon import newest_seq  # a new destination starts after it
from eventtrack.streaming.signing import new_secret
from eventtrack.streaming.tail import EventFilter, events_after

# What the admin API shows of a destination (the secret included: admin keys can do everything).
COLUMNS = (
    "id",
    "name",
    "url",
    "secret",
    "event_types",
    "filters",
    "batch_size",
    "max_wait_ms",
    "timeout_ms",
    "pause_after_seconds",
    "status",
    "paused_reason",
    "cursor_seq",
    "failing_since",
    "next_attempt_at",
    "consecutive_failures",
    "last_status",
    "last_error",
    "last_delivered_at",
    "delivered_events",
    "delivered_batches",
    "failed_attempts",
    "dead_lettered_events",
    "created_at",
    "updated_at",
)
# Editable fields: (type, minimum, maximum) for the integers.
_INTS = {
    "batch_size": (1, 1000),
    "max_wait_ms": (0, 60_000),
    "timeout_ms": (100, 60_000),
    "pause_after_seconds": (1, 30 * 86400),
}
_REQUIRED = ("name", "url")
EDITABLE = frozenset({"name", "url", "secret", "event_types", "filters", "status", *_INTS})
MAX_EVENT_TYPES = 100
MAX_URL_LENGTH = 2048
# The advisory-lock namespace of "this process delivers to destination N" (pg_try_advisory_lock(ns, id)).
LOCK_NAMESPACE = 0x45545244  # "ETRD"


class DestinationError(ValueError):
    def __init__(self, fields: dict[str, str]):
        super().__init__(", ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def parse_definition(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The columns a create (all required fields), replace or patch (`partial`) writes; DestinationError
    naming every bad field otherwise. A create without a secret gets a new one."""
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for key in body.keys() - EDITABLE:
        errors[str(key)[:100]] = "unknown field"
    if not partial:
        for key in _REQUIRED:
            if key not in body:
                errors[key] = "required"
    for key, value in body.items():
        if key not in EDITABLE:
            continue
        problem = _check(key, value)
        if problem:
            errors[key] = problem
        else:
            fields[key] = list(value) if key in ("event_types", "filters") else value
    if errors:
        raise DestinationError(errors)
    if not partial and "secret" not in fields:
        fields["secret"] = new_secret()
    return fields


def _check(key: str, value: Any) -> str | None:
    if key in _INTS:
        low, high = _INTS[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return f"an integer from {low} to {high}"
        return None
    if key == "name":
        return None if isinstance(value, str) and 1 <= len(value) <= 200 else "1 to 200 characters"
    if key == "url":
        if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
            return f"an http(s) URL of at most {MAX_URL_LENGTH} characters"
        parts = urlsplit(value)
        return None if parts.scheme in ("http", "https") and parts.hostname else "an http(s) URL with a host"
    if key == "secret":
        return None if isinstance(value, str) and 16 <= len(value) <= 200 else "16 to 200 characters"
    if key == "status":
        return None if value in ("active", "paused") else "active or paused"
    if key == "event_types":
        ok = isinstance(value, list) and len(value) <= MAX_EVENT_TYPES
        ok = ok and all(isinstance(v, str) and 1 <= len(v) <= 200 and "\x00" not in v for v in value)
        return None if ok else f"a list of at most {MAX_EVENT_TYPES} event names"
    if key == "filters":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "a list of filters like properties.plan=pro"
        try:
            parse_filters(value)
        except SegmentError as err:
            return "; ".join(err.fields.values())
        return None
    return "unknown field"


@dataclass(frozen=True)
class Destination:
    """What the delivery worker needs of a destination row."""

    id: int
    url: str
    secret: str
    wanted: EventFilter
    batch_size: int
    max_wait_ms: int
    timeout_ms: int
    pause_after_seconds: int
    status: str
    cursor_seq: int
    generation: int
    failing_since: datetime | None
    next_attempt_at: datetime | None
    consecutive_failures: int


_LOAD = sa.text(
    "SELECT id, url, secret, event_types, filters, batch_size, max_wait_ms, timeout_ms, pause_after_seconds,"
    " status, cursor_seq, generation, failing_since, next_attempt_at, consecutive_failures"
    " FROM destinations WHERE id = :id"
)


def wanted_events(event_types: list[str], filters: list[str]) -> EventFilter:
    return EventFilter(event_types=tuple(event_types), properties=tuple(parse_filters(filters)))


async def load(conn: AsyncConnection, destination_id: int) -> Destination | None:
    row = (await conn.execute(_LOAD, {"id": destination_id})).mappings().first()
    if row is None:
        return None
    values = dict(row)
    values["wanted"] = wanted_events(values.pop("event_types"), values.pop("filters"))
    return Destination(**values)


async def active_ids(conn: AsyncConnection) -> list[int]:
    return list(
        (await conn.execute(sa.text("SELECT id FROM destinations WHERE status = 'active' ORDER BY id"))).scalars()
    )


_SAME_RUN = "WHERE id = :id AND generation = :generation AND cursor_seq = :cursor"
_HEALTHY = "consecutive_failures = 0, failing_since = NULL, next_attempt_at = NULL, last_error = NULL"


async def record_delivered(
    conn: AsyncConnection, d: Destination, through: int, events: int, status: int | None
) -> bool:
    """The cursor moves to `through` (compare-and-set: False when a replay or another deliverer moved it)."""
    batches = 1 if events else 0
    result = await conn.execute(
        sa.text(
            f"UPDATE destinations SET cursor_seq = :through, delivered_events = delivered_events + :events,"
            f" delivered_batches = delivered_batches + :batches, {_HEALTHY},"
            " last_status = coalesce(:status, last_status),"
            " last_delivered_at = CASE WHEN :events > 0 THEN now() ELSE last_delivered_at END"
            f" {_SAME_RUN}"
        ),
        {
            "through": through,
            "events": events,
            "batches": batches,
            "status": status,
            "id": d.id,
            "generation": d.generation,
            "cursor": d.cursor_seq,
        },
    )
    return result.rowcount == 1


async def record_dead_letter(
    conn: AsyncConnection, d: Destination, rows: list[tuple[int, str, str]], through: int, status: int, body: str
) -> bool:
    """The receiver refused the batch for good: kept with its answer, and the cursor moves past it."""
    moved = await conn.execute(
        sa.text(
            f"UPDATE destinations SET cursor_seq = :through, dead_lettered_events = dead_lettered_events + :events,"
            f" failed_attempts = failed_attempts + 1, last_status = :status, {_HEALTHY} {_SAME_RUN}"
        ),
        {
            "through": through,
            "events": len(rows),
            "status": status,
            "id": d.id,
            "generation": d.generation,
            "cursor": d.cursor_seq,
        },
    )
    if moved.rowcount != 1:
        return False
    await conn.execute(
        sa.text(
            "INSERT INTO destination_dead_letters"
            " (destination_id, first_seq, last_seq, events, event_uuids, status, response_body)"
            " VALUES (:id, :first, :last, :events, CAST(:uuids AS uuid[]), :status, :body)"
        ),
        {
            "id": d.id,
            "first": rows[0][0],
            "last": rows[-1][0],
            "events": len(rows),
            "uuids": [uuid for _, uuid, _ in rows],
            "status": status,
            "body": body,
        },
    )
    return True


async def record_failure(
    conn: AsyncConnection, d: Destination, status: int | None, error: str, retry_in: float
) -> bool:
    """A failed attempt: the next one after `retry_in` seconds; the destination pauses once it has been
    failing for its `pause_after_seconds`. True when it paused."""
    row = (
        await conn.execute(
            sa.text(
                "UPDATE destinations SET consecutive_failures = consecutive_failures + 1,"
                " failed_attempts = failed_attempts + 1, failing_since = coalesce(failing_since, now()),"
                " next_attempt_at = now() + make_interval(secs => :retry_in), last_status = :status,"
                " last_error = :error,"
                " status = CASE WHEN now() - coalesce(failing_since, now()) >= make_interval(secs => pause_after_seconds)"
                "   THEN 'paused' ELSE status END,"
                " paused_reason = CASE WHEN now() - coalesce(failing_since, now()) >= make_interval(secs => pause_after_seconds)"
                "   THEN 'failing since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24\\:MI\\:SS')"
                "        || ' UTC: ' || :error ELSE paused_reason END"
                f" {_SAME_RUN} RETURNING status"
            ),
            {
                "retry_in": retry_in,
                "status": status,
                "error": error[:1000],
                "id": d.id,
                "generation": d.generation,
                "cursor": d.cursor_seq,
            },
        )
    ).first()
    return row is not None and row[0] == "paused"


async def replay(conn: AsyncConnection, destination_id: int, after: int) -> bool:
    """Delivers again every event with a seq above `after`: the cursor set back (or forward), failures
    forgotten, a delivery in flight discarded (the generation). False when there is no such destination."""
    result = await conn.execute(
        sa.text(
            f"UPDATE destinations SET cursor_seq = :after, generation = generation + 1, {_HEALTHY},"
            " updated_at = now() WHERE id = :id"
        ),
        {"after": after, "id": destination_id},
    )
    return result.rowcount == 1


async def seq_before(conn: AsyncConnection, received: datetime) -> int:
    """The cursor that replays every event received at or after `received`: the seq before the first of
    them (a scan of `events`: a replay is rare, and received_at has no index there)."""
    first = (
        await conn.execute(sa.text("SELECT min(ingest_seq) FROM events WHERE received_at >= :t"), {"t": received})
    ).scalar_one()
    return (first - 1) if first is not None else await newest_seq(conn)


# Counting a lag beyond this would read that many rows per destination per scrape.
LAG_COUNT_CAP = 100_000


@dataclass(frozen=True)
class Lag:
    events: int  # matching events after the cursor (at most LAG_COUNT_CAP)
    seconds: float  # since the oldest of them arrived; 0 when none waits


async def lag(conn: AsyncConnection, cursor: int, event_types: list[str], filters: list[str]) -> Lag:
    wanted = wanted_events(event_types, filters)
    newest = await newest_seq(conn)
    first = await events_after(conn, cursor, newest, wanted, 1)
    if not first.rows:
        return Lag(0, 0.0)
    where, params = wanted.sql()
    count = (
        await conn.execute(
            sa.text(f"SELECT count(*) FROM (SELECT 1 FROM events e WHERE e.ingest_seq > :cursor{where} LIMIT :cap) x"),
            {**params, "cursor": cursor, "cap": LAG_COUNT_CAP},
        )
    ).scalar_one()
    received = (
        await conn.execute(sa.text("SELECT received_at FROM events WHERE ingest_seq = :seq"), {"seq": first.rows[0][0]})
    ).scalar_one_or_none()
    seconds = (datetime.now(UTC) - received).total_seconds() if received else 0.0
    return Lag(int(count), max(0.0, seconds))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A `Retry-After` header's delay: delta seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()[:100]
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_seconds(failures: int, first: float, maximum: float, jitter: float) -> float:
    """Exponential backoff with jitter: `failures` attempts failed in a row; `jitter` in [0, 1) drawn by the
    caller (the delay is spread over its upper half, so retries of many destinations do not line up)."""
    base = min(maximum, first * 2 ** min(max(failures - 1, 0), 32))
    return base * (0.5 + 0.5 * jitter)


@dataclass(frozen=True)
class Stats:
    """A destination's figures for /metrics (the same on every API worker: they come from the database)."""

    id: int
    paused: bool
    lag: Lag
    delivered_events: int
    delivered_batches: int
    failed_attempts: int
    dead_lettered_events: int


async def all_stats(conn: AsyncConnection) -> list[Stats]:
    rows = (
        await conn.execute(
            sa.text(
                "SELECT id, status, cursor_seq, event_types, filters, delivered_events, delivered_batches,"
                " failed_attempts, dead_lettered_events FROM destinations ORDER BY id"
            )
        )
    ).all()
    return [
        Stats(
            id=r.id,
            paused=r.status == "paused",
            lag=await lag(conn, r.cursor_seq, r.event_types, r.filters),
            delivered_events=r.delivered_events,
            delivered_batches=r.delivered_batches,
            failed_attempts=r.failed_attempts,
            dead_lettered_events=r.dead_lettered_events,
        )
        for r in rows
    ]
