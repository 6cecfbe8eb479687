"""The marts' cohort rows made of ClickHouse's per-cohort counts (eventtrack/analytics/retention.py, pure)."""

from datetime import date

from eventtrack.analytics.retention import in_cohort_range, retention_rows

SIZE = date(1970, 1, 1)


def test_clickhouse_retention_rows_fill_every_period_up_to_the_newest_with_zeros():
    mon1, mon2, mon3 = date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 19)
    rows = [
        (mon1, SIZE, 3, mon3),
        (mon1, mon1, 3, mon2),
        (mon1, mon3, 1, mon3),
        (mon2, SIZE, 2, mon2),
        (mon2, mon2, 2, mon2),
    ]
    assert retention_rows(rows, "week", "buy") == [
        (mon1, 3, 0, 3, "buy"),
        (mon1, 3, 1, 0, "buy"),  # nobody of the first cohort came back in its second week: a zero row
        (mon1, 3, 2, 1, "buy"),
        (mon2, 2, 0, 2, "buy"),
        (mon2, 2, 1, 0, "buy"),  # up to the newest period with any event, whoever's it was
    ]


def test_clickhouse_retention_rows_of_days_count_periods_in_days_and_without_returns_cohorts_still_count():
    d1, d3 = date(2026, 1, 5), date(2026, 1, 7)
    # A cohort whose users never made the return event: its size, and zeros.
    rows = [(d1, SIZE, 4, d3), (d1, d3, 1, d3), (d3, SIZE, 1, d3)]
    assert retention_rows(rows, "day", None) == [
        (d1, 4, 0, 0, None),
        (d1, 4, 1, 0, None),
        (d1, 4, 2, 1, None),
        (d3, 1, 0, 0, None),
    ]
    assert retention_rows([], "day", None) == []
    assert in_cohort_range(retention_rows(rows, "day", None), d3, None) == [(d3, 1, 0, 0, None)]
    assert in_cohort_range(retention_rows(rows, "day", None), None, d3)[-1] == (d1, 4, 2, 1, None)
