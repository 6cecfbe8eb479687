from datetime import UTC, datetime

from ingest_api.admin.aggregates import full_hours

UTC = UTC


def test_full_hours_inside_an_unaligned_range():
    first, last = full_hours(datetime(2026, 11, 25, 10, 15, tzinfo=UTC), datetime(2026, 11, 25, 14, 5, tzinfo=UTC))
    assert (first, last) == (datetime(2026, 11, 25, 11, tzinfo=UTC), datetime(2026, 11, 25, 14, tzinfo=UTC))


def test_full_hours_of_an_aligned_range_are_the_range():
    start, end = datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert full_hours(start, end) == (start, end)


def test_a_range_inside_one_hour_has_no_full_hour():
    first, last = full_hours(datetime(2026, 11, 25, 10, 5, tzinfo=UTC), datetime(2026, 11, 25, 10, 55, tzinfo=UTC))
    assert first >= last
