from datetime import datetime, timedelta, timezone

import pytest

from orchestration.partitions import daily_partitions, hourly_partitions, last_complete_partition_key, window_vars


def test_window_becomes_half_open_utc_vars():
    start = datetime(2026, 3, 29, 1, tzinfo=timezone.utc)
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
        (datetime(2026, 1, 2, tzinfo=timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc)),  # reversed
        (datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc)),  # empty
    ],
)
def test_window_rejects_naive_or_empty_bounds(start, end):
    with pytest.raises(ValueError):
        window_vars(start, end)


def test_partition_windows_are_utc_hours_and_days():
    hour = hourly_partitions.time_window_for_partition_key("2026-03-29-01:00")
    assert window_vars(hour.start, hour.end) == {
        "min_ts": "2026-03-29T01:00:00+00:00",
        "max_ts": "2026-03-29T02:00:00+00:00",
    }
    day = daily_partitions.time_window_for_partition_key("2026-03-29")
    assert window_vars(day.start, day.end) == {
        "min_ts": "2026-03-29T00:00:00+00:00",
        "max_ts": "2026-03-30T00:00:00+00:00",
    }


@pytest.mark.parametrize(
    "partitions, now, key",
    [
        (hourly_partitions, datetime(2026, 3, 29, 10, 5, tzinfo=timezone.utc), "2026-03-29-09:00"),
        (hourly_partitions, datetime(2026, 3, 29, 10, 0, tzinfo=timezone.utc), "2026-03-29-09:00"),
        (hourly_partitions, datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc), "2025-12-31-23:00"),
        (daily_partitions, datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc), "2026-03-28"),
        (daily_partitions, datetime(2026, 3, 29, 0, 0, tzinfo=timezone.utc), "2026-03-28"),
    ],
)
def test_last_complete_partition_is_the_bucket_that_just_ended(partitions, now, key):
    assert last_complete_partition_key(partitions, now) == key
