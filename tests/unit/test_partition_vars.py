from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from dagster import PartitionKeyRange

from eventtrack.settings import Settings
from orchestration.partitions import (
    daily_partitions,
    hourly_partitions,
    last_complete_partition_key,
    partitions_start,
    ranges_to_build,
    window_vars,
)

START = date(2025, 1, 1)


def test_window_becomes_half_open_utc_vars():
    start = datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert window_vars(start, start + timedelta(hours=1)) == {
        "min_ts": "2026-03-29T01:00:00+00:00",
        "max_ts": "2026-03-29T02:00:00+00:00",
    }


def test_window_in_another_zone_is_converted_to_utc():
    paris = timezone(timedelta(hours=2))
    vars_ = window_vars(datetime(2026, 7, 1, 2, tzinfo=paris), datetime(2026, 7, 2, 2, tzinfo=paris))
    assert vars_ == {"min_ts": "2026-07-01T00:00:00+00:00", "max_ts": "2026-07-02T00:00:00+00:00"}


@pytest.mark.parametrize(
    "start, end",
    [
        (datetime(2026, 1, 1), datetime(2026, 1, 2)),  # naive
        (datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),  # reversed
        (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),  # empty
    ],
)
def test_window_rejects_naive_or_empty_bounds(start, end):
    with pytest.raises(ValueError):
        window_vars(start, end)


def test_partition_windows_are_utc_hours_and_days():
    hour = hourly_partitions(START).time_window_for_partition_key("2026-03-29-01:00")
    assert window_vars(hour.start, hour.end) == {
        "min_ts": "2026-03-29T01:00:00+00:00",
        "max_ts": "2026-03-29T02:00:00+00:00",
    }
    day = daily_partitions(START).time_window_for_partition_key("2026-03-29")
    assert window_vars(day.start, day.end) == {
        "min_ts": "2026-03-29T00:00:00+00:00",
        "max_ts": "2026-03-30T00:00:00+00:00",
    }


@pytest.mark.parametrize(
    "partitions, now, key",
    [
        (hourly_partitions(START), datetime(2026, 3, 29, 10, 5, tzinfo=UTC), "2026-03-29-09:00"),
        (hourly_partitions(START), datetime(2026, 3, 29, 10, 0, tzinfo=UTC), "2026-03-29-09:00"),
        (hourly_partitions(START), datetime(2026, 1, 1, 0, 5, tzinfo=UTC), "2025-12-31-23:00"),
        (daily_partitions(START), datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "2026-03-28"),
        (daily_partitions(START), datetime(2026, 3, 29, 0, 0, tzinfo=UTC), "2026-03-28"),
    ],
)
def test_last_complete_partition_is_the_bucket_that_just_ended(partitions, now, key):
    assert last_complete_partition_key(partitions, now) == key


NOW = datetime(2026, 3, 29, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "setting, installed_at, start",
    [
        # The day before the installation: a new install has no history of missing partitions.
        (None, datetime(2026, 3, 1, 23, 59, tzinfo=UTC), date(2026, 2, 28)),
        # The installation's UTC day, whatever the zone it was recorded in.
        (None, datetime(2026, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2))), date(2026, 2, 28)),
        # Not installed yet: as if now.
        (None, None, date(2026, 3, 28)),
        # The setting wins, earlier or later than the installation ...
        (date(2024, 6, 1), datetime(2026, 3, 1, tzinfo=UTC), date(2024, 6, 1)),
        (date(2026, 3, 20), datetime(2026, 3, 1, tzinfo=UTC), date(2026, 3, 20)),
        # ... but never later than yesterday: the first run always has a complete day.
        (date(2026, 3, 29), datetime(2026, 3, 1, tzinfo=UTC), date(2026, 3, 28)),
        (date(2027, 1, 1), None, date(2026, 3, 28)),
        (None, datetime(2026, 3, 29, 10, 0, tzinfo=UTC), date(2026, 3, 28)),
    ],
)
def test_partitions_start_the_day_before_the_installation_or_at_the_setting(setting, installed_at, start):
    assert partitions_start(setting, installed_at, NOW) == start


def test_partitions_start_setting_is_read_as_a_date():
    assert Settings.from_env({}).partitions_start_date is None
    assert Settings.from_env({"PARTITIONS_START_DATE": "2026-02-01"}).partitions_start_date == date(2026, 2, 1)
    with pytest.raises(ValueError, match="PARTITIONS_START_DATE"):
        Settings.from_env({"PARTITIONS_START_DATE": "February"})


def test_partitions_begin_at_the_start_and_end_at_the_last_complete_one():
    start = partitions_start(None, datetime(2026, 3, 28, 8, tzinfo=UTC), NOW)
    hours = hourly_partitions(start).get_partition_keys(current_time=NOW)
    assert (hours[0], hours[-1], len(hours)) == ("2026-03-27-00:00", "2026-03-29-09:00", 24 + 24 + 10)
    assert daily_partitions(start).get_partition_keys(current_time=NOW) == ["2026-03-27", "2026-03-28"]


@pytest.mark.parametrize(
    "materialized, ranges",
    [
        ({}, [("a", "e")]),  # nothing built yet: one run for all
        ({"a", "b", "c", "d", "e"}, [("e", "e")]),  # all built: the latest again, as a schedule tick
        ({"a", "b"}, [("c", "e")]),  # after downtime: the rest in one run
        ({"a", "c", "e"}, [("b", "b"), ("d", "e")]),  # holes: a run each
        ({"b", "c", "d", "e", "z"}, [("a", "a"), ("e", "e")]),
    ],
)
def test_ranges_to_build_cover_the_missing_partitions_and_the_latest(materialized, ranges):
    assert ranges_to_build(["a", "b", "c", "d", "e"], materialized) == [PartitionKeyRange(*r) for r in ranges]


def test_no_partition_no_range():
    assert ranges_to_build([], {"a"}) == []
