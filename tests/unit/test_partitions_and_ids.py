from datetime import UTC, date, datetime

from eventtrack.partitions import event_partition_window, partition_name, retention_cutoff
from eventtrack.uuid7 import uuid7


def test_partition_window_spans_retention_and_days_ahead():
    now = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert event_partition_window(now, 90, 7) == (date(2026, 8, 27), date(2026, 12, 2))


def test_retention_cutoff_is_midnight_utc_of_the_oldest_kept_day():
    now = datetime(2026, 11, 25, 5, tzinfo=UTC)
    assert retention_cutoff(now, 90) == datetime(2026, 8, 27, tzinfo=UTC)


def test_partition_names_sort_by_day():
    assert partition_name(date(2026, 1, 2)) == "events_p20260102"


def test_uuid7_is_version_7_and_time_ordered():
    first, second = uuid7(), uuid7()
    assert first.version == 7 and first.variant == "specified in RFC 4122"
    assert first.int >> 80 <= second.int >> 80
