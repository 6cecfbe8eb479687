"""Retention cohorts on ClickHouse: the dbt marts' triangle (dbt_project/macros/retention.sql), computed at
query time from raw events (docs/analytics.md "Retention").

Definition, the marts': a user's cohort is the UTC day or ISO week (Monday) of their first stored event;
they are retained in period N when they have a return event (RETENTION_RETURN_EVENT, any event when unset)
in the period N periods after their cohort's. Every cohort has a row for each period up to the latest
period with any event, zeros included.

The events are those of the retention window (hybrid.py: ClickHouse's part and the arrivals it has not
loaded yet): what the marts hold once the day's expired partitions are dropped and the pipeline has run.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from eventtrack.analytics.hybrid import clickhouse_events

PERIOD_DAYS = {"week": 7, "day": 1}
_TRUNCATE = {"week": "toMonday(timestamp)", "day": "toDate(timestamp)"}
# The period a user's cohort size is counted under (one row per user, before any real period).
_COHORT_SIZE = date(1970, 1, 1)


def clickhouse_retention_sql(database: str, period: str, return_event: str | None, unloaded: str) -> str:
    """Rows (cohort, active period, users, newest period): the users of each cohort per period they returned
    in, and with the period 1970-01-01 each cohort's size, over ClickHouse's part of the split and the
    `unloaded` arrivals (hybrid.clickhouse_events). Binds the split's parameters, and `return_event` when
    there is one. `retention_rows` makes the marts' rows of them."""
    trunc = _TRUNCATE[period]
    returns = "event_type = {return_event:String}" if return_event is not None else "1"
    return f"""
SELECT cohort, active, count() AS users, max(newest) AS newest
FROM (
    SELECT min({trunc}) AS cohort, max({trunc}) AS newest, groupUniqArrayIf({trunc}, {returns}) AS periods
    FROM {clickhouse_events(database, unloaded)}
    GROUP BY distinct_id
)
ARRAY JOIN arrayConcat([toDate('{_COHORT_SIZE.isoformat()}')], periods) AS active
GROUP BY cohort, active"""


def retention_rows(
    rows: list[tuple[date, date, int, date]], period: str, return_event: str | None
) -> list[tuple[date, int, int, int, str | None]]:
    """`clickhouse_retention_sql`'s rows as the marts' (cohort, cohort_users, period_number, retained_users,
    return_event): every cohort from period 0 to the newest period with any event (pure)."""
    step = PERIOD_DAYS[period]
    sizes: dict[date, int] = {}
    retained: dict[tuple[date, int], int] = {}
    newest = None
    for cohort, active, users, newest_of_group in rows:
        newest = newest_of_group if newest is None else max(newest, newest_of_group)
        if active == _COHORT_SIZE:
            sizes[cohort] = users
        else:
            retained[(cohort, (active - cohort).days // step)] = users
    return [
        (cohort, users, n, retained.get((cohort, n), 0), return_event)
        for cohort, users in sorted(sizes.items())
        for n in range((newest - cohort).days // step + 1)
    ]


def in_cohort_range(rows: list[tuple], start: date | None, end: date | None) -> list[tuple]:
    """The rows whose cohort is in [start, end) (either bound optional), as the marts are filtered."""
    return [r for r in rows if (start is None or r[0] >= start) and (end is None or r[0] < end)]


def retention_params(split_params: dict[str, Any], return_event: str | None) -> dict[str, Any]:
    params = dict(split_params)
    if return_event is not None:
        params["return_event"] = return_event
    return params
