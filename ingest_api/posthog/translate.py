"""PostHog capture payloads → native events (pure: no I/O).

What a PostHog SDK sends, and what becomes of it:

- the body is a batch `{"api_key"|"token", "batch": [...], "sent_at", "historical_migration"}`,
  a JSON array of events, or one event;
- an event is `{event, distinct_id, properties, timestamp, uuid, offset, $set, $set_once}`;
  `distinct_id` may also be `$distinct_id` or `properties.distinct_id`;
- `offset` (milliseconds before the request was sent) wins over `timestamp`,
  as in PostHog: the event time is then `now - offset` on our clock, with no
  further skew correction; otherwise `timestamp` and the batch `sent_at` go
  through the native clock-skew correction;
- `$session_id`, `$device_id`, `$app_version`, `$os`, `$os_version` become the
  native columns (when they are strings) and leave `properties`; everything else
  stays in `properties`; a top-level `$set` / `$set_once` is kept under
  `properties.$set` / `properties.$set_once` (PostHog stores them there too).

Validation is not repeated here: the native event goes through
`validation.normalize_event` like any other, which refuses what is invalid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# PostHog property → native column.
PROPERTY_COLUMNS = {
    "$session_id": "session_id",
    "$device_id": "device_id",
    "$app_version": "app_version",
    "$os": "os_name",
    "$os_version": "os_version",
}
_KEY_FIELDS = ("api_key", "token")
_MAX_OFFSET_MS = 10 * 365 * 24 * 3600 * 1000  # beyond this an offset is nonsense: ignored


@dataclass(frozen=True)
class PosthogPayload:
    events: list[Any]
    sent_at: Any  # the batch's sent_at as sent (parsed by the native validator)
    token: str | None  # the project key the payload carries, if any
    is_batch: bool  # a batch or array (per-event refusals) rather than one event


class NotAPayload(ValueError):
    """The JSON is neither a batch, an array of events, nor an event."""


def read_payload(value: Any) -> PosthogPayload:
    if isinstance(value, list):
        return PosthogPayload(value, None, _first_token(value), True)
    if not isinstance(value, dict):
        raise NotAPayload("The body must be a JSON object (a batch or an event) or an array of events.")
    if "batch" in value:
        events = value["batch"]
        if not isinstance(events, list):
            raise NotAPayload("`batch` must be a list of events.")
        token = _token(value) or _first_token(events)
        return PosthogPayload(events, value.get("sent_at"), token, True)
    return PosthogPayload([value], value.get("sent_at"), _token(value) or _first_token([value]), False)


def _token(data: dict[str, Any]) -> str | None:
    for name in _KEY_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _first_token(events: list[Any]) -> str | None:
    """posthog-js puts the key in each event (`token`, or `properties.token`)."""
    for event in events[:1]:
        if isinstance(event, dict):
            properties = event.get("properties")
            return _token(event) or (_token(properties) if isinstance(properties, dict) else None)
    return None


def translate_event(event: Any, now: datetime) -> Any:
    """One PostHog event as the native event dict that `normalize_event` reads."""
    if not isinstance(event, dict):
        return event  # refused by the validator like any non-object event
    properties = event.get("properties")
    native: dict[str, Any] = {"event": event.get("event"), "uuid": event.get("uuid")}
    if isinstance(properties, dict):
        properties = dict(properties)
        for name, column in PROPERTY_COLUMNS.items():
            value = properties.get(name)
            if isinstance(value, str):
                native[column] = properties.pop(name)
        for name in ("$set", "$set_once"):
            top = event.get(name)
            if isinstance(top, dict):
                inner = properties.get(name)
                properties[name] = {**inner, **top} if isinstance(inner, dict) else top
    elif properties is None:
        properties = {name: event[name] for name in ("$set", "$set_once") if isinstance(event.get(name), dict)}
    native["properties"] = properties

    distinct_id = event.get("distinct_id")
    if distinct_id is None:
        distinct_id = event.get("$distinct_id")
    if distinct_id is None and isinstance(properties, dict):
        distinct_id = properties.get("distinct_id", properties.get("$distinct_id"))
    native["distinct_id"] = distinct_id

    offset = event.get("offset")
    if _is_offset(offset):
        native["timestamp"] = (now - timedelta(milliseconds=offset)).isoformat()
        native["sent_at"] = None  # the offset already is on our clock: no skew correction
    else:
        native["timestamp"] = event.get("timestamp")
        if "sent_at" in event:
            native["sent_at"] = event["sent_at"]
    return native


def _is_offset(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and 0 <= value <= _MAX_OFFSET_MS


# --- person updates ----------------------------------------------------------


@dataclass(frozen=True)
class PersonUpdate:
    distinct_id: str
    set: dict[str, Any]
    set_once: dict[str, Any]
    merge_from: str | None  # $identify's $anon_distinct_id / $create_alias's alias
    timestamp: datetime


def person_update(native: dict[str, Any], distinct_id: str, timestamp: datetime) -> PersonUpdate | None:
    """What an accepted event changes about its person, or None (the common case, checked cheaply)."""
    properties = native.get("properties")
    if not isinstance(properties, dict):
        return None
    event = native.get("event")
    set_ = properties.get("$set")
    set_once = properties.get("$set_once")
    merge_from = None
    if event == "$identify":
        merge_from = properties.get("$anon_distinct_id")
    elif event == "$create_alias":
        merge_from = properties.get("alias")
    if not isinstance(merge_from, str) or not merge_from or merge_from == distinct_id or len(merge_from) > 200:
        merge_from = None
    set_ = set_ if isinstance(set_, dict) else {}
    set_once = set_once if isinstance(set_once, dict) else {}
    if not (set_ or set_once or merge_from or event == "$identify"):
        return None
    return PersonUpdate(distinct_id, set_, set_once, merge_from, timestamp)
