"""Event time from what the client says (pure).

Phones have wrong clocks. When a client sends both the event's `timestamp`
and `sent_at` (its clock when the request left), the offset between its clock
and ours is `sent_at - received_at`, and the event happened at
`timestamp - offset` on our clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class InvalidTimestamp(ValueError):
    pass


@dataclass(frozen=True)
class EventTime:
    timestamp: datetime  # corrected, what is stored and partitioned on
    clamped: bool  # True when the result was too far in the future


def parse_timestamp(value: object) -> datetime:
    """ISO 8601 string → aware datetime; a timestamp without a zone is UTC."""
    if not isinstance(value, str):
        raise InvalidTimestamp("must be an ISO 8601 string")
    text = value.strip()
    if not text or len(text) > 64:
        raise InvalidTimestamp("must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTimestamp("is not a valid ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise InvalidTimestamp("is out of range") from None


def corrected_event_time(
    timestamp: datetime | None,
    sent_at: datetime | None,
    received_at: datetime,
    max_future: timedelta,
) -> EventTime:
    if timestamp is None:
        return EventTime(received_at, False)
    result = timestamp
    if sent_at is not None:
        try:
            result = timestamp - (sent_at - received_at)
        except OverflowError:  # absurd sent_at: the correction leaves the calendar
            if sent_at > received_at:  # ...towards the past: older than anything kept
                return EventTime(datetime.min.replace(tzinfo=UTC), False)
            return EventTime(received_at, True)
    if result - received_at > max_future:
        return EventTime(received_at, True)
    return EventTime(result, False)
