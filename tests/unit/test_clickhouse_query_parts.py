"""Pure parts of the queries on ClickHouse: the marts' cohort rows made of ClickHouse's per-cohort counts
(eventtrack/analytics/retention.py), and how times and unloaded arrivals are written into a query (hybrid.py)."""

from datetime import UTC, date, datetime, timedelta, timezone

import orjson

from eventtrack.analytics.hybrid import clickhouse_time, sql_string, unloaded_data
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


def test_clickhouse_time_bounds_are_utc_and_inside_what_clickhouse_dates_hold():
    plus5 = timezone(timedelta(hours=5))
    assert clickhouse_time(datetime(2026, 3, 1, 5, 30, tzinfo=plus5)) == datetime(2026, 3, 1, 0, 30, tzinfo=UTC)
    assert clickhouse_time(datetime(2026, 3, 1, 5, 30, tzinfo=plus5)).tzinfo == UTC
    assert clickhouse_time(datetime(1, 1, 2, tzinfo=plus5)) == datetime(1970, 1, 1, tzinfo=UTC)
    assert clickhouse_time(datetime(9999, 12, 31, tzinfo=UTC)) == datetime(2149, 6, 1, tzinfo=UTC)


def test_clickhouse_unloaded_arrivals_are_json_lines_in_a_string_literal():
    at = datetime(2026, 3, 1, 5, 30, 0, 120, tzinfo=timezone(timedelta(hours=5)))
    row = (at, "buy", "it's", None, None, "1.0", None, 7, '{"a": "\\"}', '{"a": "\\"}')
    data = unloaded_data([row, row])
    assert [orjson.loads(line) for line in data.split("\n")] == [
        ["2026-03-01 00:30:00.000120", "buy", "it's", None, None, "1.0", None, 7, '{"a": "\\"}', '{"a": "\\"}']
    ] * 2
    assert unloaded_data([]) == ""
    # A backslash and a quote escaped: ClickHouse reads the literal back as the text.
    assert sql_string("it's \\ {x:String}") == "'it\\'s \\\\ {x:String}'"
