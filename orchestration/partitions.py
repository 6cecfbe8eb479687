"""Time partitions of the aggregates, and partition window -> dbt vars (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition, TimeWindowPartitionsDefinition

# Older partitions would only rebuild buckets whose raw events are long gone
# (a no-op: delete+insert never deletes a bucket it has no rows for).
PARTITIONS_START = "2025-01-01"

hourly_partitions = HourlyPartitionsDefinition(start_date=f"{PARTITIONS_START}-00:00", timezone="UTC")
daily_partitions = DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")


def window_vars(start: datetime, end: datetime) -> dict[str, str]:
    """A partition's time window -> dbt vars {"min_ts", "max_ts"}: half-open [start, end), in UTC."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("partition window bounds must be timezone-aware")
    if not start < end:
        raise ValueError(f"empty partition window: {start.isoformat()} .. {end.isoformat()}")
    return {
        "min_ts": start.astimezone(timezone.utc).isoformat(),
        "max_ts": end.astimezone(timezone.utc).isoformat(),
    }


def last_complete_partition_key(partitions: TimeWindowPartitionsDefinition, now: datetime) -> str:
    """The key of the latest partition that ended at or before `now` (at 10:05, the hour 09:00)."""
    window = partitions.get_prev_partition_window(now)
    if window is None:
        raise ValueError(f"no partition ends before {now.isoformat()}")
    return partitions.get_partition_key_for_timestamp(window.start.timestamp())
