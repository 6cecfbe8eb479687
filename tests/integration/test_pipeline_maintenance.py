"""Maintenance of the raw tables: session closure, retention, partitions (real Postgres, real Dagster)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from dagster import materialize

from eventtrack.partitions import partition_name
from eventtrack.settings import Settings
from orchestration.maintenance import (
    close_inactive_sessions,
    event_partitions,
    event_partitions_ahead,
    prune_aggregates,
    retention,
    retention_buckets,
    session_closure,
)
from orchestration.resources import EventtrackResource, dbt_manifest

# Retention reads which tables to prune from the dbt manifest, which dbt_env prepares.
pytestmark = pytest.mark.usefixtures("dbt_env")

TIMEOUT = timedelta(minutes=30)


@pytest.fixture
def eventtrack(database_url) -> EventtrackResource:
    return EventtrackResource.from_settings(Settings(database_url=database_url))


def add_session(db, started_at, *, ended_at=None, end_reason=None) -> str:
    sid = str(uuid.uuid4())
    db.execute(
        "INSERT INTO sessions (session_id, distinct_id, started_at, ended_at, end_reason) VALUES (%s, 'u', %s, %s, %s)",
        (sid, started_at, ended_at, end_reason),
    )
    return sid


def add_event(db, ts, *, session_id=None, received_at=None) -> uuid.UUID:
    event_id = uuid.uuid4()
    db.execute(
        'INSERT INTO events (uuid, event_type, distinct_id, session_id, "timestamp", received_at) VALUES (%s, %s, %s, %s, %s, %s)',
        (event_id, "screen_view", "u", session_id, ts, received_at or ts),
    )
    return event_id


def test_session_closure_ends_exactly_the_idle_sessions_at_their_last_activity(db):
    now = datetime.now(UTC).replace(microsecond=0)
    idle_with_events = add_session(db, now - timedelta(hours=2))
    add_event(db, now - timedelta(minutes=90), session_id=idle_with_events)
    add_event(db, now - timedelta(minutes=40), session_id=idle_with_events)
    idle_without_events = add_session(db, now - timedelta(hours=2))
    just_started = add_session(db, now - timedelta(minutes=10))
    old_but_active = add_session(db, now - timedelta(hours=3))
    add_event(db, now - timedelta(minutes=5), session_id=old_but_active)
    at_the_limit = add_session(db, now - timedelta(minutes=30))  # exactly the timeout: not yet idle
    ended_by_app = add_session(db, now - timedelta(hours=5), ended_at=now - timedelta(hours=4), end_reason="client")

    closed = close_inactive_sessions(db, now, TIMEOUT)

    assert closed == sorted(
        [(idle_with_events, now - timedelta(minutes=40)), (idle_without_events, now - timedelta(hours=2))]
    )
    rows = dict(
        (sid, (ended, reason))
        for sid, ended, reason in db.execute("SELECT session_id::text, ended_at, end_reason FROM sessions").fetchall()
    )
    assert rows[idle_with_events] == (now - timedelta(minutes=40), "timeout")
    assert rows[idle_without_events] == (now - timedelta(hours=2), "timeout")
    for still_open in (just_started, old_but_active, at_the_limit):
        assert rows[still_open] == (None, None)
    assert rows[ended_by_app] == (now - timedelta(hours=4), "client")
    assert close_inactive_sessions(db, now, TIMEOUT) == []  # idempotent


def test_session_closure_asset_records_how_many_it_closed(db, eventtrack):
    now = datetime.now(UTC)
    add_session(db, now - timedelta(hours=1))
    add_session(db, now - timedelta(minutes=1))

    result = materialize([session_closure], resources={"eventtrack": eventtrack})

    assert result.success
    [materialization] = result.asset_materializations_for_node("maintenance__session_closure")
    assert materialization.metadata["sessions_closed"].value == 1
    assert db.execute("SELECT count(*) FROM sessions WHERE end_reason = 'timeout'").fetchone() == (1,)


def test_retention_drops_exactly_the_expired_partitions_and_prunes_the_side_tables(db, eventtrack):
    today = datetime.now(UTC).date()
    oldest_kept = today - timedelta(days=eventtrack.events_retention_days)
    expired = [oldest_kept - timedelta(days=n) for n in range(5, 0, -1)]
    db.execute("SELECT ensure_event_partitions(%s, %s)", (min(expired), oldest_kept))
    # A partition not made by ensure_event_partitions is never touched, however old.
    db.execute("CREATE TABLE events_legacy PARTITION OF events FOR VALUES FROM ('2000-01-01') TO ('2000-01-02')")
    try:

        def midday(day: date) -> datetime:
            return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)

        add_event(db, midday(expired[0]))
        add_event(db, midday(expired[0]))
        add_event(db, midday(expired[3]))
        kept_event = add_event(db, datetime(oldest_kept.year, oldest_kept.month, oldest_kept.day, tzinfo=UTC))
        before = set(event_partitions(db))
        now = datetime.now(UTC)
        cutoff = datetime(oldest_kept.year, oldest_kept.month, oldest_kept.day, tzinfo=UTC)
        db.execute(
            "INSERT INTO event_uuids (uuid, received_at) VALUES (%s, %s), (%s, %s)",
            (uuid.uuid4(), cutoff - timedelta(days=1, seconds=1), kept_event, cutoff - timedelta(hours=12)),
        )
        db.execute(
            "INSERT INTO rejected_events (received_at, endpoint, reason, detail, payload, payload_bytes, payload_truncated)"
            " VALUES (%s, 'capture', 'invalid', 'x', '', 0, false), (%s, 'capture', 'invalid', 'x', '', 0, false)",
            (now - timedelta(days=31), now - timedelta(days=29)),
        )

        result = materialize([retention], resources={"eventtrack": eventtrack})

        assert result.success
        dropped = {partition_name(day) for day in expired}
        assert set(event_partitions(db)) == before - dropped
        [materialization] = result.asset_materializations_for_node("maintenance__retention")
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        assert metadata["dropped_partitions"] == {
            partition_name(day): {0: 2, 3: 1}.get(i, 0) for i, day in enumerate(expired)
        }
        assert metadata["events_dropped"] == 3
        assert metadata["event_uuids_deleted"] == 1
        assert metadata["rejected_events_deleted"] == 1
        assert db.execute("SELECT uuid FROM events").fetchall() == [(kept_event,)]
        assert db.execute("SELECT uuid FROM event_uuids").fetchall() == [(kept_event,)]
        assert db.execute("SELECT count(*) FROM rejected_events").fetchone() == (1,)
        assert "events_legacy" in event_partitions(db)
    finally:
        db.execute("DROP TABLE IF EXISTS events_legacy")


def test_a_partition_name_with_a_final_newline_is_not_taken_for_a_day(db):
    name = "events_p19900101\n"
    db.execute(f"CREATE TABLE \"{name}\" PARTITION OF events FOR VALUES FROM ('1990-01-01') TO ('1990-01-02')")
    try:
        assert event_partitions(db)[name] is None
    finally:
        db.execute(f'DROP TABLE "{name}"')


def test_partition_maintenance_creates_the_coming_days(db, eventtrack):
    last = datetime.now(UTC).date() + timedelta(days=eventtrack.partitions_ahead_days)
    db.execute(f'DROP TABLE IF EXISTS "{partition_name(last)}"')

    result = materialize([event_partitions_ahead], resources={"eventtrack": eventtrack})

    assert result.success
    assert partition_name(last) in event_partitions(db)
    [materialization] = result.asset_materializations_for_node("maintenance__event_partitions")
    assert materialization.metadata["partitions_created"].value == 1


def test_aggregate_buckets_older_than_their_retention_are_pruned_and_missing_tables_skipped(db):
    now = datetime.now(UTC)
    today = now.date()
    db.execute("DROP SCHEMA IF EXISTS analytics CASCADE")
    db.execute("CREATE SCHEMA analytics")
    try:
        db.execute("CREATE TABLE analytics.agg_events_hourly (hour timestamptz)")
        db.execute("CREATE TABLE analytics.agg_events_daily (day date)")
        midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
        oldest_kept = midnight - timedelta(days=730)
        db.execute(
            "INSERT INTO analytics.agg_events_hourly VALUES (%s), (%s)", (oldest_kept - timedelta(hours=1), oldest_kept)
        )
        db.execute(
            "INSERT INTO analytics.agg_events_daily VALUES (%s), (%s)",
            (oldest_kept.date() - timedelta(days=1), oldest_kept.date()),
        )

        deleted = prune_aggregates(db, now, 730)

        assert deleted == {"analytics.agg_events_hourly": 1, "analytics.agg_events_daily": 1}
        assert db.execute("SELECT hour FROM analytics.agg_events_hourly").fetchall() == [(oldest_kept,)]
        assert db.execute("SELECT day FROM analytics.agg_events_daily").fetchall() == [(oldest_kept.date(),)]
    finally:
        db.execute("DROP SCHEMA analytics CASCADE")


def test_the_aggregate_tables_pruned_are_the_dbt_models_that_say_so():
    """Table names and bucket columns come from the models' yml (meta.retention_bucket), not a second list."""
    assert retention_buckets(dbt_manifest()) == {
        "analytics.agg_events_hourly": "hour",
        "analytics.agg_events_daily": "day",
        "analytics.agg_active_users_daily": "day",
        "analytics.agg_event_volume_anomalies": "hour",
    }
