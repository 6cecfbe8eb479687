"""Validate and normalise one event (pure: no I/O).

Input is the parsed JSON of one event; output is an `EventRow` ready for the
sink, or `EventInvalid` with a code and the offending fields. The outcomes for
odd input are part of the API contract (docs/event_tracking_schema.md):

- NUL characters are stripped from every string (Postgres text cannot hold them);
- lone UTF-16 surrogates are replaced by U+FFFD;
- NaN, Infinity and numbers beyond a double refuse the event (`invalid_number`);
- properties nested deeper than the limit refuse the event (`too_deep`).
"""

from __future__ import annotations

import math
import uuid as uuid_mod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from eventtrack.clock import (
    EventTime,
    InvalidTimestamp,
    corrected_event_time,
    parse_timestamp,
)
from eventtrack.errors import ApiError, EventInvalid
from eventtrack.uuid7 import uuid7

MAX_ID_LENGTH = 200
CLAMPED_WARNING = "timestamp_clamped_to_received_at"


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int
    max_properties_depth: int
    max_future: timedelta
    oldest_allowed: datetime  # events before this are outside retention


@dataclass(slots=True)
class EventRow:
    uuid: uuid_mod.UUID
    event_type: str
    distinct_id: str
    properties_json: bytes  # serialized once, here; the sink copies it as jsonb
    device_id: str | None
    session_id: str | None
    app_version: str | None
    os_name: str | None
    os_version: str | None
    timestamp: datetime
    client_timestamp: datetime | None
    sent_at: datetime | None
    received_at: datetime
    warnings: tuple[str, ...] = ()


_OPTIONAL_STRINGS = ("device_id", "session_id", "app_version", "os_name", "os_version")


def normalize_event(
    raw: Any,
    *,
    received_at: datetime,
    batch_sent_at: datetime | None,
    limits: Limits,
    sanitize: bool,
) -> EventRow:
    if not isinstance(raw, dict):
        raise EventInvalid("invalid_event", "An event must be a JSON object.", {"event": "must be an object"})
    errors: dict[str, str] = {}

    distinct_id = distinct_id_field(raw.get("distinct_id"), errors, sanitize)
    event_type = required_string(
        raw["event_type"] if "event_type" in raw else raw.get("event"), "event_type", errors, sanitize
    )
    # One by one, in _OPTIONAL_STRINGS order (the order of `errors`): cheaper than a dict per event.
    device_id = optional_string(raw.get("device_id"), "device_id", errors, sanitize)
    session_id = optional_string(raw.get("session_id"), "session_id", errors, sanitize)
    app_version = optional_string(raw.get("app_version"), "app_version", errors, sanitize)
    os_name = optional_string(raw.get("os_name"), "os_name", errors, sanitize)
    os_version = optional_string(raw.get("os_version"), "os_version", errors, sanitize)

    properties = raw.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        errors["properties"] = "must be a JSON object"
        properties = {}
    else:
        problem = check_json_tree(properties, limits.max_properties_depth, sanitize)
        if isinstance(problem, str):
            errors["properties"] = problem
        else:
            properties = problem

    event_uuid = _uuid(raw.get("uuid"), errors)
    client_ts = _optional_timestamp(raw.get("timestamp"), "timestamp", errors)
    sent_at = _optional_timestamp(raw.get("sent_at"), "sent_at", errors) if "sent_at" in raw else batch_sent_at

    if errors:
        code = "too_deep" if errors.get("properties", "").startswith("nested deeper") else "validation_error"
        if any(v.startswith("number") for v in errors.values()):
            code = "invalid_number"
        raise EventInvalid(code, "The event has invalid fields: " + ", ".join(sorted(errors)) + ".", errors)

    when = client_time(client_ts, sent_at, received_at, limits, "timestamp")
    warnings: tuple[str, ...] = ()
    if when.clamped:
        warnings = (CLAMPED_WARNING,)
        properties = {**properties, "$ingestion_warnings": [CLAMPED_WARNING]}

    properties_json = orjson.dumps(properties)
    size = len(properties_json) + len(distinct_id) + len(event_type)
    size += sum(map(len, filter(None, (device_id, session_id, app_version, os_name, os_version))))
    if size > limits.max_event_bytes:
        raise EventInvalid(
            "event_too_large",
            f"The event is {size} bytes; the limit is {limits.max_event_bytes}.",
            {"event": f"max {limits.max_event_bytes} bytes"},
        )

    return EventRow(
        uuid=event_uuid or uuid7(),
        event_type=event_type,
        distinct_id=distinct_id,
        properties_json=properties_json,
        client_timestamp=client_ts,
        sent_at=sent_at,
        timestamp=when.timestamp,
        received_at=received_at,
        warnings=warnings,
        device_id=device_id,
        session_id=session_id,
        app_version=app_version,
        os_name=os_name,
        os_version=os_version,
    )


def client_time(
    timestamp: datetime | None, sent_at: datetime | None, received_at: datetime, limits: Limits, field: str
) -> EventTime:
    """The time kept for what a client's clock said (an event's `timestamp`, a session's
    `started_at` or `ended_at`): corrected for clock skew, clamped to `received_at` when
    too far ahead, refused (`too_old`) when older than the retention window."""
    when = corrected_event_time(timestamp, sent_at, received_at, limits.max_future)
    if when.timestamp < limits.oldest_allowed:
        raise EventInvalid(
            "too_old",
            f"The time {when.timestamp.isoformat()} ({field}) is older than the retention window "
            f"(oldest accepted: {limits.oldest_allowed.isoformat()}).",
            {field: "older than the retention window"},
        )
    return when


def parse_batch_sent_at(value: Any) -> datetime | None:
    """The batch-level `sent_at`; raises EventInvalid (the whole batch is refused) when unreadable."""
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except InvalidTimestamp as exc:
        raise EventInvalid("validation_error", f"sent_at {exc}.", {"sent_at": str(exc)}) from None


def clean_string(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a \ud800-style escape
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def distinct_id_field(value: Any, errors: dict[str, str], sanitize: bool) -> str:
    if isinstance(value, bool):
        errors["distinct_id"] = "must be a string or a number"
        return ""
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        value = str(value)
    return required_string(value, "distinct_id", errors, sanitize)


def required_string(value: Any, name: str, errors: dict[str, str], sanitize: bool) -> str:
    if value is None:
        errors[name] = "is required"
        return ""
    if not isinstance(value, str):
        errors[name] = "must be a string"
        return ""
    if sanitize:
        value = clean_string(value)
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        errors[name] = f"must be 1 to {MAX_ID_LENGTH} characters"
    return value


def optional_string(value: Any, name: str, errors: dict[str, str], sanitize: bool) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors[name] = "must be a string"
        return None
    if sanitize:
        value = clean_string(value)
    if len(value) > MAX_ID_LENGTH:
        errors[name] = f"must be at most {MAX_ID_LENGTH} characters"
    return value or None


def _uuid(value: Any, errors: dict[str, str]) -> uuid_mod.UUID | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid_mod.UUID(value)
        except ValueError:
            pass
    errors["uuid"] = "must be a UUID string"
    return None


def _optional_timestamp(value: Any, name: str, errors: dict[str, str]) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except InvalidTimestamp as exc:
        errors[name] = str(exc)
        return None


_TOO_DEEP = "nested deeper than {} levels"
_NOT_FINITE = "number out of range: NaN, Infinity and values beyond a double are refused"


def _tree_problem(node: dict | list, depth: int, max_depth: int) -> str | None:
    """The first problem of a tree that needs no sanitizing, in the order `walk` below finds it."""
    if depth > max_depth:
        return _TOO_DEEP.format(max_depth)
    for v in node.values() if isinstance(node, dict) else node:
        if isinstance(v, float):
            if not math.isfinite(v):
                return _NOT_FINITE
        elif isinstance(v, (dict, list)):
            problem = _tree_problem(v, depth + 1, max_depth)
            if problem is not None:
                return problem
    return None


def check_json_tree(value: dict, max_depth: int, sanitize: bool) -> dict | str:
    """Returns the (sanitized) tree, or a sentence saying what is wrong with it."""
    if not sanitize:
        # The common case (orjson parsed the body): only check, nothing to rebuild.
        problem = _tree_problem(value, 1, max_depth)
        return value if problem is None else problem
    # Sanitizing (the tolerant parser read the body): the tree is rebuilt with clean strings.
    problems: list[str] = []

    def walk(node: Any, depth: int) -> Any:
        if problems:
            return node
        if isinstance(node, (dict, list)):
            if depth > max_depth:
                problems.append(_TOO_DEEP.format(max_depth))
                return node
            if isinstance(node, dict):
                return {clean_string(k): walk(v, depth + 1) for k, v in node.items()}
            return [walk(v, depth + 1) for v in node]
        if isinstance(node, float) and not math.isfinite(node):
            problems.append(_NOT_FINITE)
            return node
        if isinstance(node, str):
            return clean_string(node)
        return node

    cleaned = walk(value, 1)
    return problems[0] if problems else cleaned


def batch_size_error(events: list, max_events: int, field: str) -> ApiError | None:
    """The refusal of a batch with no events or too many (the same rule for every capture protocol)."""
    if not events:
        return ApiError.of("empty_batch", fields={field: "must not be empty"})
    if len(events) > max_events:
        return ApiError.of(
            "batch_too_large",
            f"The batch holds {len(events)} events; the limit is {max_events}.",
            {field: f"at most {max_events} events"},
        )
    return None
