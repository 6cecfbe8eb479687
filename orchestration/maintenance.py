"""Maintenance of the raw tables: session closure, retention, event partitions.

The only writes the pipeline makes outside the analytics schema, each a small
statement documented in docs/operations.md. The functions take a connection
and an explicit `now` so tests can pin time; the assets wrap them and record
what changed as materialization metadata.
"""

import re
from datetime import UTC, date, datetime, timedelta

import psycopg
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from eventtrack.partitions import event_partition_window, retention_cutoff
from orchestration.raw import EVENT_UUIDS, EVENTS, REJECTED_EVENTS, SESSIONS
from orchestration.resources import EventtrackResource, dbt_manifest

_PARTITION_NAME = re.compile(r"events_p(\d{8})")
# How long DROP TABLE may wait for the lock on `events` before giving up
# (it then retries the next day) rather than stalling the ingest writer.
_LOCK_TIMEOUT = "5s"


def retention_buckets(manifest: dict) -> dict[str, str]:
    """Analytics tables pruned after aggregates_retention_days -> their bucket column (pure).

    The dbt models say it themselves (`meta.retention_bucket` in their yml), so a table's name and
    schema are written once, in dbt.
    """
    return {
        f"{node['schema']}.{node['alias']}": node["config"]["meta"]["retention_bucket"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and "retention_bucket" in (node["config"].get("meta") or {})
    }


def close_inactive_sessions(conn: psycopg.Connection, now: datetime, timeout: timedelta) -> list[tuple[str, datetime]]:
    """Ends every open session whose last activity (its start, or its newest event) is older than `timeout`.

    ended_at = that last activity, end_reason = 'timeout'. Returns (session_id, ended_at) of the closed ones.
    """
    rows = conn.execute(
        """
        WITH activity AS (
            SELECT s.session_id,
                   greatest(s.started_at, (SELECT max(e."timestamp") FROM events e
                                           WHERE e.session_id = s.session_id::text)) AS last_activity
            FROM sessions s
            WHERE s.ended_at IS NULL
        )
        UPDATE sessions s
        SET ended_at = a.last_activity, end_reason = 'timeout'
        FROM activity a
        WHERE s.session_id = a.session_id
          AND s.ended_at IS NULL
          AND a.last_activity < %(now)s - %(timeout)s
        RETURNING s.session_id::text, s.ended_at
        """,
        {"now": now, "timeout": timeout},
    ).fetchall()
    return sorted(rows)


def event_partitions(conn: psycopg.Connection) -> dict[str, date | None]:
    """Partitions of `events` by name -> their UTC day (None for a name not made by ensure_event_partitions)."""
    names = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass"
    ).fetchall()
    result: dict[str, date | None] = {}
    for (name,) in names:
        match = _PARTITION_NAME.fullmatch(name)
        result[name] = datetime.strptime(match.group(1), "%Y%m%d").date() if match else None
    return result


def drop_expired_event_partitions(conn: psycopg.Connection, now: datetime, retention_days: int) -> dict[str, int]:
    """DROPs each daily partition entirely before the retention cutoff. Returns {partition: rows it held}.

    Events are never deleted row by row: a partition is a whole UTC day.
    """
    cutoff = retention_cutoff(now, retention_days).date()
    dropped: dict[str, int] = {}
    for name, day in sorted(event_partitions(conn).items()):
        if day is None or day >= cutoff:
            continue
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
            (rows,) = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            conn.execute(f'DROP TABLE "{name}"')
        dropped[name] = rows
    return dropped


def prune_event_uuids(conn: psycopg.Connection, now: datetime, retention_days: int) -> int:
    """Forgets dedup uuids received a day before the oldest kept event partition.

    An accepted event is at most max_future_skew_hours (< 1 day) ahead of its
    received_at, so every event still stored keeps its uuid, and an event
    older than retention is refused anyway: dedup stays exact.
    """
    cutoff = retention_cutoff(now, retention_days) - timedelta(days=1)
    return conn.execute("DELETE FROM event_uuids WHERE received_at < %s", (cutoff,)).rowcount


def prune_rejected_events(conn: psycopg.Connection, now: datetime, retention_days: int) -> int:
    cutoff = now - timedelta(days=retention_days)
    return conn.execute("DELETE FROM rejected_events WHERE received_at < %s", (cutoff,)).rowcount


def prune_aggregates(conn: psycopg.Connection, now: datetime, retention_days: int) -> dict[str, int]:
    """Deletes aggregate buckets older than the aggregates' retention (tables not built yet are skipped)."""
    cutoff = retention_cutoff(now, retention_days)
    deleted: dict[str, int] = {}
    for table, column in retention_buckets(dbt_manifest()).items():
        (exists,) = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if exists:
            bound = cutoff.date() if column == "day" else cutoff
            deleted[table] = conn.execute(f"DELETE FROM {table} WHERE {column} < %s", (bound,)).rowcount
    return deleted


def ensure_upcoming_partitions(conn: psycopg.Connection, now: datetime, retention_days: int, ahead_days: int) -> int:
    """Creates the missing daily partitions of the retention window and the next `ahead_days`. Returns how many."""
    first, last = event_partition_window(now, retention_days, ahead_days)
    (created,) = conn.execute("SELECT ensure_event_partitions(%s, %s)", (first, last)).fetchone()
    return created


def _now() -> datetime:
    return datetime.now(UTC)


@asset(
    key=AssetKey(["maintenance", "session_closure"]),
    deps=[EVENTS, SESSIONS],
    group_name="maintenance",
    kinds={"postgres"},
    description="Closes sessions idle longer than SESSION_TIMEOUT_MINUTES (end_reason 'timeout', ended_at = last activity).",
)
def session_closure(context: AssetExecutionContext, eventtrack: EventtrackResource) -> MaterializeResult:
    with eventtrack.connect() as conn:
        closed = close_inactive_sessions(conn, _now(), timedelta(minutes=eventtrack.session_timeout_minutes))
    context.log.info("closed %d idle sessions", len(closed))
    return MaterializeResult(
        metadata={
            "sessions_closed": len(closed),
            "sample": MetadataValue.json([sid for sid, _ in closed[:20]]),
        }
    )


@asset(
    key=AssetKey(["maintenance", "retention"]),
    deps=[EVENTS, EVENT_UUIDS, REJECTED_EVENTS],
    group_name="maintenance",
    kinds={"postgres"},
    description=(
        "Drops event partitions older than EVENTS_RETENTION_DAYS, prunes dedup uuids and dead letters "
        "past their windows, and aggregate buckets older than AGGREGATES_RETENTION_DAYS."
    ),
)
def retention(context: AssetExecutionContext, eventtrack: EventtrackResource) -> MaterializeResult:
    now = _now()
    with eventtrack.connect() as conn:
        dropped = drop_expired_event_partitions(conn, now, eventtrack.events_retention_days)
        uuids = prune_event_uuids(conn, now, eventtrack.events_retention_days)
        rejected = prune_rejected_events(conn, now, eventtrack.rejected_events_retention_days)
        aggregates = prune_aggregates(conn, now, eventtrack.aggregates_retention_days)
    context.log.info("dropped partitions %s", sorted(dropped))
    return MaterializeResult(
        metadata={
            "dropped_partitions": MetadataValue.json(dropped),
            "events_dropped": sum(dropped.values()),
            "event_uuids_deleted": uuids,
            "rejected_events_deleted": rejected,
            "aggregate_rows_deleted": MetadataValue.json(aggregates),
        }
    )


@asset(
    key=AssetKey(["maintenance", "event_partitions"]),
    deps=[EVENTS, AssetKey(["maintenance", "retention"])],
    group_name="maintenance",
    kinds={"postgres"},
    description="Creates the daily partitions of `events` for the retention window and the next EVENTS_PARTITIONS_AHEAD_DAYS.",
)
def event_partitions_ahead(context: AssetExecutionContext, eventtrack: EventtrackResource) -> MaterializeResult:
    with eventtrack.connect() as conn:
        created = ensure_upcoming_partitions(
            conn, _now(), eventtrack.events_retention_days, eventtrack.partitions_ahead_days
        )
    return MaterializeResult(metadata={"partitions_created": created})


maintenance_assets = [session_closure, retention, event_partitions_ahead]
