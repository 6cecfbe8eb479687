"""Which daily partitions of `events` must exist (pure; no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def utc_day(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


def event_partition_window(now: datetime, retention_days: int, ahead_days: int) -> tuple[date, date]:
    """Inclusive first and last UTC day whose partition must exist."""
    today = utc_day(now)
    return today - timedelta(days=retention_days), today + timedelta(days=ahead_days)


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """Events before this instant are outside the retention window (midnight UTC of the oldest kept day)."""
    first, _ = event_partition_window(now, retention_days, 0)
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def partition_name(day: date) -> str:
    return f"events_p{day:%Y%m%d}"
