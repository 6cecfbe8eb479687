"""Time partitions of the aggregates: where they start, which to build, and window -> dbt vars (pure)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache

from dagster import (
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    PartitionKeyRange,
    TimeWindowPartitionsDefinition,
)

from eventtrack.partitions import utc_day

# The run tags of one run over a range of partitions (those a single-run backfill sets).
PARTITION_RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def partitions_start(setting: date | None, installed_at: datetime | None, now: datetime) -> date:
    """The first day of the hourly and daily partitions.

    PARTITIONS_START_DATE if set, else the UTC day before the installation (no installation yet:
    before `now`), so a new install shows no history of missing partitions; never later than
    yesterday, so the first run has a complete hour and day to build. Events older than the start
    are aggregated all the same (every run rebuilds each bucket that received events): their
    buckets only have no partition in Dagster.
    """
    yesterday = utc_day(now) - timedelta(days=1)
    if setting is not None:
        return min(setting, yesterday)
    return min(utc_day(installed_at or now) - timedelta(days=1), yesterday)


@cache
def hourly_partitions(start: date) -> HourlyPartitionsDefinition:
    return HourlyPartitionsDefinition(start_date=f"{start:%Y-%m-%d}-00:00", timezone="UTC")


@cache
def daily_partitions(start: date) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=f"{start:%Y-%m-%d}", timezone="UTC")


def ranges_to_build(keys: Sequence[str], built: Collection[str]) -> list[PartitionKeyRange]:
    """The runs of consecutive `keys` not `built` yet, in order, one range each.

    `keys`: every complete partition, oldest first. The last one is always built, as the
    schedule's tick would (and with it every bucket that received events since the last run).
    """
    ranges: list[PartitionKeyRange] = []
    first: str | None = None
    for index, key in enumerate(keys):
        if key not in built or index == len(keys) - 1:
            first = first or key
            last = key
        elif first is not None:
            ranges.append(PartitionKeyRange(first, last))
            first = None
    if first is not None:
        ranges.append(PartitionKeyRange(first, last))
    return ranges


def partition_range_tags(partitions: PartitionKeyRange) -> dict[str, str]:
    """The tags that make one run cover `partitions` (assets with BackfillPolicy.single_run())."""
    return dict(zip(PARTITION_RANGE_TAGS, (partitions.start, partitions.end)))


def window_vars(start: datetime, end: datetime) -> dict[str, str]:
    """A partition's time window -> dbt vars {"min_ts", "max_ts"}: half-open [start, end), in UTC."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("partition window bounds must be timezone-aware")
    if not start < end:
        raise ValueError(f"empty partition window: {start.isoformat()} .. {end.isoformat()}")
    return {
        "min_ts": start.astimezone(UTC).isoformat(),
        "max_ts": end.astimezone(UTC).isoformat(),
    }


def last_complete_partition_key(partitions: TimeWindowPartitionsDefinition, now: datetime) -> str:
    """The key of the latest partition that ended at or before `now` (at 10:05, the hour 09:00)."""
    window = partitions.get_prev_partition_window(now)
    if window is None:
        raise ValueError(f"no partition ends before {now.isoformat()}")
    return partitions.get_partition_key_for_timestamp(window.start.timestamp())
