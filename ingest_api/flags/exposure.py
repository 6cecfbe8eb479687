"""Server-side exposure recording: `record_exposure=true` on the flag endpoints.

Each evaluated (active) flag becomes a `$feature_flag_called` event, the event
PostHog SDKs send when the app reads a flag, written through the normal event
sink. Its uuid is derived from (flag, distinct_id, UTC day), so asking again the
same day is deduplicated at ingest like any repeated event: one exposure event
per flag, user and day, whatever the number of requests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from eventtrack.errors import ApiError, DatabaseUnavailable, unavailable
from ingest_api.validation import EventRow

EXPOSURE_EVENT = "$feature_flag_called"
PARAM = "record_exposure"
# Fixed namespace: the same (flag, user, day) gives the same uuid on every server.
_NAMESPACE = uuid.UUID("6c1f3a52-8e0b-4d6e-9a57-2f4b1c9d7e30")


def wants_exposure(query: Mapping[str, str]) -> bool:
    """The `record_exposure` query parameter: true/1 or false/0 (default false)."""
    if PARAM not in query:  # `in`, not .get(): Starlette's query params answer a missing .get() with an exception
        return False
    value = query[PARAM]
    if value in ("", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise ApiError.of("invalid_parameter", "record_exposure must be true or false.", {PARAM: "true or false"})


def exposure_uuid(flag_key: str, distinct_id: str, when: datetime) -> uuid.UUID:
    # The UTC day whatever the datetime's zone (a Postgres session may hand it back in its own).
    return uuid.uuid5(_NAMESPACE, f"{flag_key}\n{distinct_id}\n{when.astimezone(UTC).date().isoformat()}")


def exposure_rows(distinct_id: str, responses: Iterable[tuple[str, Any]], now: datetime) -> list[EventRow]:
    """One `$feature_flag_called` row per (flag key, response); response is the variant key or a boolean."""
    return [
        EventRow(
            uuid=exposure_uuid(flag_key, distinct_id, now),
            event_type=EXPOSURE_EVENT,
            distinct_id=distinct_id,
            properties_json=orjson.dumps(
                {"$feature_flag": flag_key, "$feature_flag_response": response, "$exposure_source": "server"}
            ),
            device_id=None,
            session_id=None,
            app_version=None,
            os_name=None,
            os_version=None,
            timestamp=now,
            client_timestamp=None,
            sent_at=None,
            received_at=now,
        )
        for flag_key, response in responses
    ]


async def record_exposures(state: Any, rows: list[EventRow]) -> None:
    if not rows:
        return
    try:
        await state.sink.write(rows, ())
    except DatabaseUnavailable:
        raise unavailable(state.settings.retry_after_seconds) from None
