"""Event aggregates per UTC hour or day on ClickHouse: the rows of the dbt marts agg_events_hourly /
agg_events_daily (dbt_project/macros/event_aggregates.sql, sessionize.sql), or with property filters and
a breakdown the raw rows of the admin endpoint, computed at query time (docs/analytics.md).

Per (bucket, event_type, app_version, os_name[, breakdown value]): events, distinct users, distinct
devices, and (unsegmented, as the marts) distinct sessions. A session is the event's session_id, or a
derived one: per user and device (NULL and '' alike), a new session starts after a gap longer than the
session timeout. Within a bucket two events have no event of the same user and device between them
outside the bucket, so the bucket's own events give its sessions (the marts' reasoning); a derived
session's key is named after its first event in the bucket.
"""

from __future__ import annotations

from eventtrack.analytics.hybrid import Split, clickhouse_events

BUCKETS = {"hour": "toStartOfHour(timestamp)", "day": "toDate(timestamp)"}
BUCKET_TYPES = {"hour": "DateTime64(6, 'UTC')", "day": "Date"}
_SESSION_ORDER = (
    "PARTITION BY session_id IS NULL, bucket, distinct_id, ifNull(device_id, '') ORDER BY timestamp, ingest_seq"
    " ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
)


def sort_columns(bucket: str, breakdown: bool) -> list[str]:
    """The keyset order of the aggregate rows (the Postgres endpoint's)."""
    return [bucket, "event_type", "ifNull(app_version, '')", "ifNull(os_name, '')"] + (
        ["ifNull(breakdown_value, '')"] if breakdown else []
    )


def clickhouse_buckets_sql(
    database: str,
    bucket: str,
    *,
    sessions: bool,
    breakdown_expr: str | None,
    filters: str,
    where: list[str],
    descending: bool,
    limit: int,
    unloaded: str,
) -> str:
    """The aggregate rows (the marts' columns, plus breakdown_value with a breakdown), in keyset order.

    `filters`: ` AND ...` on the events (property filters, `raw_start`/`raw_end` bounds); `where`:
    conditions on the rows (bucket bounds, equality filters, the cursor); `unloaded`: the arrivals ClickHouse
    has not loaded (hybrid.unloaded_data). Binds the split's parameters, `timeout_us` when `sessions`, and
    whatever `filters` and `where` bind.
    """
    value = f", CAST({breakdown_expr} AS Nullable(String)) AS breakdown_value" if breakdown_expr else ""
    if sessions:
        # The derived session of each event: the newest session start (a first event, or one after a gap
        # longer than the timeout) at or before it, among its user's and device's events of the bucket.
        events = f"""(
            SELECT *, if(session_id IS NOT NULL, session_id, concat('derived-', lower(hex(MD5(concat(
                distinct_id, '|', ifNull(device_id, ''), '|', toString(toUnixTimestamp64Micro(started)))))))) AS session_key
            FROM (
                SELECT *, max(if(previous IS NULL OR dateDiff('microsecond', previous, timestamp) > {{timeout_us:Int64}},
                                 toNullable(timestamp), NULL)) OVER ({_SESSION_ORDER}) AS started
                FROM (
                    SELECT *, lagInFrame(toNullable(timestamp)) OVER ({_SESSION_ORDER}) AS previous
                    FROM (SELECT *, {BUCKETS[bucket]} AS bucket FROM {clickhouse_events(database, unloaded)} WHERE 1{filters})
                )
            )
        )"""
        unique_sessions = "uniqExact(session_key)"
    else:
        events = (
            f"(SELECT *, {BUCKETS[bucket]} AS bucket FROM {clickhouse_events(database, unloaded)} WHERE 1{filters})"
        )
        unique_sessions = "CAST(NULL AS Nullable(UInt64))"
    breakdown_column = ", breakdown_value" if breakdown_expr else ""
    group = "bucket, event_type, app_version, os_name" + breakdown_column
    order = "DESC" if descending else "ASC"
    return f"""
SELECT * FROM (
    SELECT bucket AS {bucket}, toString(event_type) AS event_type, app_version, os_name, count() AS event_count,
        uniqExact(distinct_id) AS unique_users, uniqExact(device_id) AS unique_devices,
        {unique_sessions} AS unique_sessions{breakdown_column}
    FROM (SELECT *{value} FROM {events})
    GROUP BY {group}
)
WHERE {" AND ".join(where) or "1"}
ORDER BY {", ".join(f"{c} {order}" for c in sort_columns(bucket, breakdown_expr is not None))}
LIMIT {limit}"""


def clickhouse_bucket_counts_sql(database: str, bucket: str) -> str:
    """(bucket, events) of ClickHouse's part of the split from `start` on (counts add up: the caller adds
    Postgres's part). Binds the split's parameters and `start`."""
    return (
        f"SELECT {BUCKETS[bucket]} AS bucket, count() FROM {database}.events"
        f" WHERE {Split.CLICKHOUSE_PART} AND timestamp >= {{start:DateTime64(6, 'UTC')}} GROUP BY bucket"
    )
