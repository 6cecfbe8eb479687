"""The dbt models run through Dagster against the test Postgres, checked against ground truth.

One dbt manifest is parsed per test session. The aggregates are materialized
twice, with late events, duplicates and a session bridge arriving in between,
and every mart is compared with a GROUP BY / Python recomputation over the
raw events.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from orchestration.partitions import window_vars

TIMEOUT = timedelta(minutes=30)
ANALYTICS_SCHEMAS = ("analytics", "analytics_staging", "analytics_intermediate")


# Early enough for every partition the tests materialize.
PARTITIONS_START = date(2025, 1, 1)


class Pipeline:
    def __init__(self, settings):
        from orchestration.dbt import aggregate_assets, dbt_resource
        from orchestration.resources import EventtrackResource

        self.resources = {"dbt": dbt_resource(), "eventtrack": EventtrackResource.from_settings(settings)}
        self.hourly_aggregates, self.daily_aggregates = aggregate_assets(PARTITIONS_START)

    def materialize(self, assets, partition_key: str | None = None, run_config: dict | None = None):
        from dagster import materialize

        result = materialize(assets, resources=self.resources, partition_key=partition_key, run_config=run_config)
        assert result.success
        return result

    def run_all(self, hour_key: str, day_key: str) -> None:
        from orchestration.dbt import dbt_models

        self.materialize([dbt_models])
        self.materialize([self.hourly_aggregates], partition_key=hour_key)
        self.materialize([self.daily_aggregates], partition_key=day_key)


# --- raw data -------------------------------------------------------------------------------

EVENT_COLUMNS = (
    "uuid",
    "event_type",
    "distinct_id",
    "device_id",
    "session_id",
    "app_version",
    "os_name",
    "timestamp",
    "received_at",
)


def dbt_vars_arg(**extra) -> list[str]:
    """`--vars` for a dbt command a test runs itself: the default settings' vars (dbt has no defaults for them)."""
    from eventtrack.settings import Settings
    from orchestration.resources import settings_dbt_vars

    return ["--vars", json.dumps({**settings_dbt_vars(Settings()), **extra})]


def insert_events(db: psycopg.Connection, rows: list[dict]) -> None:
    cols = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    with db.cursor() as cur:
        cur.executemany(
            f"INSERT INTO events ({cols}) VALUES ({', '.join(['%s'] * len(EVENT_COLUMNS))})",
            [tuple(r[c] for c in EVENT_COLUMNS) for r in rows],
        )


def event(
    ts: datetime,
    user: str,
    device: str | None,
    *,
    event_type="screen_view",
    session_id=None,
    app_version="1.0",
    os_name="ios",
    received_at: datetime | None = None,
) -> dict:
    return {
        "uuid": uuid.uuid4(),
        "event_type": event_type,
        "distinct_id": user,
        "device_id": device,
        "session_id": session_id,
        "app_version": app_version,
        "os_name": os_name,
        "timestamp": ts,
        "received_at": received_at or datetime.now(UTC) - timedelta(hours=1),
    }


def explicit_session_id(user: str, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{user}/{n}"))


def random_events(rng: random.Random, start: datetime, hours: int, n: int, received_at: datetime) -> list[dict]:
    rows = []
    for _ in range(n):
        user = f"u{rng.randrange(12)}"
        ts = start + timedelta(seconds=rng.randrange(hours * 3600))
        rows.append(
            event(
                ts,
                user,
                rng.choice([f"{user}-phone", f"{user}-tablet", None]),
                event_type=rng.choice(["app_open", "screen_view", "purchase"]),
                session_id=rng.choice([None, None, None, explicit_session_id(user, rng.randrange(2))]),
                app_version=rng.choice(["1.0", "1.1", None]),
                os_name=rng.choice(["ios", "android", None]),
                received_at=received_at,
            )
        )
    return rows


def insert_sessions(db: psycopg.Connection, start: datetime) -> None:
    """Rows in the sessions table for some of the explicit ids: open, ended by the app, and one without events."""
    rows = [
        (explicit_session_id("u0", 0), "u0", "u0-phone", start, None, None),
        (explicit_session_id("u1", 0), "u1", None, start, start + timedelta(hours=40), "client"),
        (
            explicit_session_id("u2", 1),
            "u2",
            "u2-tablet",
            start + timedelta(hours=3),
            start + timedelta(hours=4),
            "timeout",
        ),
        (explicit_session_id("nobody", 0), "nobody", None, start + timedelta(hours=1), None, None),
    ]
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO sessions (session_id, distinct_id, device_id, app_version, os_name, started_at, ended_at, end_reason)"
            " VALUES (%s, %s, %s, '1.0', 'ios', %s, %s, %s)",
            rows,
        )


# --- ground truth ---------------------------------------------------------------------------


def raw_events(db: psycopg.Connection) -> list[dict]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute('SELECT *, "timestamp" AS ts FROM events ORDER BY "timestamp", ingest_seq').fetchall()


def session_keys(events: list[dict]) -> dict[int, object]:
    """ingest_seq -> session key, sessionizing independently of the SQL: explicit id, or a 30-minute-gap chain."""
    keys: dict[int, object] = {}
    last: dict[tuple, tuple[datetime, object]] = {}
    for e in events:  # ordered by time
        if e["session_id"] is not None:
            keys[e["ingest_seq"]] = ("explicit", e["session_id"])
            continue
        chain = (e["distinct_id"], e["device_id"])
        previous = last.get(chain)
        key = previous[1] if previous and e["ts"] - previous[0] <= TIMEOUT else ("derived", chain, e["ts"])
        last[chain] = (e["ts"], key)
        keys[e["ingest_seq"]] = key
    return keys


def expected_aggregates(events: list[dict], bucket) -> dict[tuple, tuple]:
    keys = session_keys(events)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for e in events:
        groups[(bucket(e["ts"]), e["event_type"], e["app_version"], e["os_name"])].append(e)
    return {
        group: (
            len({e["uuid"] for e in rows}),
            len({e["distinct_id"] for e in rows}),
            len({e["device_id"] for e in rows if e["device_id"] is not None}),
            len({keys[e["ingest_seq"]] for e in rows}),
        )
        for group, rows in groups.items()
    }


def utc_hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def utc_day(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


def expected_active_users(events: list[dict]) -> dict[date, tuple[int, int, int]]:
    users_by_day: dict[date, set] = defaultdict(set)
    for e in events:
        users_by_day[utc_day(e["ts"])].add(e["distinct_id"])

    def active(day: date, days: int) -> int:
        return len(set().union(*(users_by_day.get(day - timedelta(days=i), set()) for i in range(days))))

    return {day: (active(day, 1), active(day, 7), active(day, 30)) for day in users_by_day}


def expected_sessions(db: psycopg.Connection, events: list[dict]) -> tuple[dict, list]:
    """(explicit sessions by id, sorted derived sessions) as fct_sessions should hold them; all events are > timeout old."""
    keys = session_keys(events)
    by_key: dict[object, list[dict]] = defaultdict(list)
    for e in events:
        by_key[keys[e["ingest_seq"]]].append(e)

    def stats(rows):
        return (
            (len({e["uuid"] for e in rows}), rows[0]["event_type"], rows[-1]["event_type"]) if rows else (0, None, None)
        )

    explicit = {}
    table = db.execute(
        "SELECT session_id::text, distinct_id, started_at, ended_at, end_reason FROM sessions"
    ).fetchall()
    for sid, user, started, ended, reason in table:
        explicit[sid] = (user, started, ended, reason or "open", *stats(by_key.pop(("explicit", sid), [])))
    derived = []
    for key, rows in by_key.items():
        first, last = rows[0], rows[-1]
        row = (first["distinct_id"], first["ts"], last["ts"], "timeout", *stats(rows))
        if key[0] == "explicit":
            explicit[key[1]] = row
        else:
            derived.append(row)
    return explicit, sorted(derived)


def actual_sessions(db: psycopg.Connection) -> tuple[dict, list]:
    rows = db.execute(
        "SELECT session_id, session_source, distinct_id, started_at, ended_at, end_reason, event_count,"
        " first_event_type, last_event_type FROM analytics.fct_sessions"
    ).fetchall()
    explicit = {r[0]: r[2:] for r in rows if r[1] == "explicit"}
    return explicit, sorted(r[2:] for r in rows if r[1] == "derived")


def actual(db: psycopg.Connection, sql: str) -> dict[tuple, tuple]:
    return {row[:4]: row[4:] for row in db.execute(sql).fetchall()}


def assert_marts_match_raw(db: psycopg.Connection) -> None:
    events = raw_events(db)
    assert actual(
        db,
        "SELECT hour, event_type, app_version, os_name, event_count, unique_users, unique_devices, unique_sessions"
        " FROM analytics.agg_events_hourly",
    ) == expected_aggregates(events, utc_hour)
    assert actual(
        db,
        "SELECT day, event_type, app_version, os_name, event_count, unique_users, unique_devices, unique_sessions"
        " FROM analytics.agg_events_daily",
    ) == expected_aggregates(events, utc_day)
    rows = db.execute("SELECT day, dau, wau, mau FROM analytics.agg_active_users_daily").fetchall()
    assert {r[0]: r[1:] for r in rows} == expected_active_users(events)
    assert actual_sessions(db) == expected_sessions(db, events)


# --- tests ----------------------------------------------------------------------------------


def test_definitions_load(dbt_env):
    from dagster import Definitions

    from orchestration.definitions import defs as load_defs

    defs = load_defs()  # as the code location loads them (workspace.yaml)
    Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "eventtrack/events",
        "analytics_staging/stg_eventtrack__events",
        "analytics/agg_events_hourly",
        "analytics/agg_events_daily",
        "analytics/agg_active_users_daily",
        "analytics/fct_sessions",
        "maintenance/session_closure",
        "maintenance/retention",
        "maintenance/event_partitions",
    } <= keys
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert specs["analytics/agg_events_hourly"].freshness_policy.fail_window.to_timedelta() == timedelta(hours=2)
    assert specs["analytics/agg_active_users_daily"].freshness_policy.fail_window.to_timedelta() == timedelta(hours=26)
    # Lineage: raw -> staging -> marts.
    assert "analytics_staging/stg_eventtrack__events" in {
        d.asset_key.to_user_string() for d in specs["analytics/agg_events_hourly"].deps
    }
    assert specs["analytics_staging/stg_eventtrack__events"].deps[0].asset_key.to_user_string() == "eventtrack/events"
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert "unique_combination_of_columns_agg_events_hourly_hour__event_type__app_version__os_name" in checks
    # The saved funnels' results are computed daily, by the job that rebuilds the models rebuilt whole.
    daily = defs.resolve_job_def("sessions_and_staging").asset_layer.selected_asset_keys
    assert {"analytics/agg_funnel_results", "analytics/agg_funnel_results_table"} <= {k.to_user_string() for k in daily}
    # The volume anomalies are judged in the hourly job, after the hourly aggregates, with a check of their own.
    hourly = defs.resolve_job_def("hourly_aggregates").asset_layer.selected_asset_keys
    assert {"analytics/agg_events_hourly", "analytics/agg_event_volume_anomalies"} <= {
        k.to_user_string() for k in hourly
    }
    assert "no_new_volume_anomalies" in checks
    assert {d.asset_key.to_user_string() for d in specs["analytics/agg_event_volume_anomalies"].deps} == {
        "analytics/agg_events_hourly",
        "analytics/agg_event_volume_anomalies_table",
    }
    assert {d.asset_key.to_user_string() for d in specs["analytics/agg_funnel_results"].deps} == {
        "analytics/agg_funnel_results_table",
        "analytics_staging/stg_eventtrack__saved_funnels",
        "eventtrack/events",
    }


def test_aggregates_are_exact_after_late_events_and_duplicates(pipeline, db):
    rng = random.Random(7)
    now = datetime.now(UTC)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    start = today - timedelta(days=3)
    before_first_run = now - timedelta(hours=1)
    first = random_events(rng, start, 48, 400, received_at=before_first_run)
    # Nulls in every group column but event_type, on the same hour: still one row each.
    first += [
        event(
            start + timedelta(minutes=m), "u-null", None, app_version=None, os_name=None, received_at=before_first_run
        )
        for m in (1, 2, 50)
    ]
    # Two derived sessions of one device, 50 minutes apart across an hour boundary...
    bridge_at = start + timedelta(hours=30)
    first += [
        event(bridge_at + timedelta(minutes=m), "u-bridge", "dev-b", received_at=before_first_run) for m in (-25, 25)
    ]
    insert_events(db, first)
    insert_sessions(db, start)

    pipeline.run_all((start + timedelta(hours=5)).strftime("%Y-%m-%d-%H:%M"), start.strftime("%Y-%m-%d"))
    assert_marts_match_raw(db)
    assert db.execute("SELECT count(*) FROM analytics.fct_sessions WHERE distinct_id = 'u-bridge'").fetchone() == (2,)
    (first_mark,) = db.execute("SELECT max(_ingest_seq_watermark) FROM analytics.agg_events_hourly").fetchone()

    # Between the runs: late events for old hours, exact duplicates of stored rows (as if
    # resent after the dedup window), and ...the event that joins them into one.
    arriving = now - timedelta(minutes=20)
    late = random_events(rng, start, 6, 30, received_at=arriving)
    duplicates = [dict(row, received_at=arriving) for row in first[:25]]
    insert_events(db, late + duplicates + [event(bridge_at, "u-bridge", "dev-b", received_at=arriving)])
    yesterday = today - timedelta(days=1)
    pipeline.run_all(yesterday.strftime("%Y-%m-%d-%H:%M"), yesterday.strftime("%Y-%m-%d"))
    assert_marts_match_raw(db)
    assert db.execute("SELECT count(*) FROM analytics.fct_sessions WHERE distinct_id = 'u-bridge'").fetchone() == (1,)

    # Only the hours that received rows, and the partition's hour, were rewritten.
    rewritten = {
        row[0]
        for row in db.execute(
            "SELECT DISTINCT hour FROM analytics.agg_events_hourly WHERE _ingest_seq_watermark > %s", (first_mark,)
        )
    }
    arrived = {utc_hour(r["timestamp"]) for r in late + duplicates} | {bridge_at}
    assert arrived <= rewritten <= arrived | {yesterday}


def test_partitions_start_the_day_before_the_installation(dbt_env, database_url, db):
    from eventtrack.settings import Settings
    from orchestration.definitions import build_definitions

    (installed,) = db.execute("SELECT min(applied_at) FROM schema_migrations").fetchone()
    defs = build_definitions(Settings(database_url=database_url))
    for job in ("hourly_aggregates", "daily_aggregates"):
        first = defs.resolve_job_def(job).partitions_def.get_first_partition_window().start
        day_before = utc_day(installed) - timedelta(days=1)
        assert first.astimezone(UTC) == datetime.combine(day_before, datetime.min.time(), UTC)


def scheduled_definitions():
    from eventtrack.settings import Settings
    from orchestration.definitions import build_definitions

    return build_definitions(Settings(partitions_start_date=PARTITIONS_START))


def test_schedules_run_named_jobs_in_utc_at_the_documented_times(dbt_env):
    from dagster import DefaultScheduleStatus

    schedules = scheduled_definitions().get_repository_def().schedule_defs
    assert {s.name: (s.job_name, s.cron_schedule, s.execution_timezone) for s in schedules} == {
        "hourly_aggregates_schedule": ("hourly_aggregates", "5 * * * *", "UTC"),
        "daily_aggregates_schedule": ("daily_aggregates", "0 1 * * *", "UTC"),
        "sessions_and_staging_schedule": ("sessions_and_staging", "0 1 * * *", "UTC"),
        "session_closure_schedule": ("session_closure", "*/10 * * * *", "UTC"),
        "raw_maintenance_schedule": ("raw_maintenance", "30 0 * * *", "UTC"),
        "experiment_results_schedule": ("experiment_results", "30 1 * * *", "UTC"),
        "churn_scores_schedule": ("churn_scores", "0 2 * * 1", "UTC"),
    }
    assert {s.default_status for s in schedules} == {DefaultScheduleStatus.RUNNING}


def test_clickhouse_load_job_and_schedule_exist_only_with_clickhouse_url(dbt_env):
    from dagster import AssetKey

    from eventtrack.settings import Settings
    from orchestration.definitions import build_definitions

    defs = build_definitions(
        Settings(partitions_start_date=PARTITIONS_START, clickhouse_url="chdb://:memory:", clickhouse_load_minutes=10)
    )
    schedule = defs.resolve_schedule_def("clickhouse_load_schedule")
    assert (schedule.job_name, schedule.cron_schedule, schedule.execution_timezone) == (
        "clickhouse_load",
        "*/10 * * * *",
        "UTC",
    )
    assert defs.resolve_job_def("clickhouse_load").asset_layer.selected_asset_keys == {
        AssetKey(["clickhouse", "events"])
    }
    # Unset (test_schedules_run_named_jobs_in_utc_at_the_documented_times): no such job, no such asset.
    unset = scheduled_definitions().get_repository_def()
    assert not unset.has_job("clickhouse_load")
    assert AssetKey(["clickhouse", "events"]) not in unset.asset_graph.get_all_asset_keys()


HOURS_OF_MARCH_28 = [f"2026-03-28-{h:02d}:00" for h in range(24)]
HOURS_OF_MARCH_29 = [f"2026-03-29-{h:02d}:00" for h in range(10)]


@pytest.mark.parametrize(
    "schedule_name, tick, built, requested",
    [
        # Nothing built since the start: one run for all of it.
        ("hourly_aggregates_schedule", (2026, 3, 29, 10, 5), [], ["2026-03-28-00:00...2026-03-29-09:00"]),
        # Everything built but the hour that just ended: that hour.
        (
            "hourly_aggregates_schedule",
            (2026, 3, 29, 10, 5),
            HOURS_OF_MARCH_28 + HOURS_OF_MARCH_29[:9],
            ["2026-03-29-09:00"],
        ),
        # Three hours missed (the daemon was down) and an old hole: a run each.
        (
            "hourly_aggregates_schedule",
            (2026, 3, 29, 10, 5),
            HOURS_OF_MARCH_28[:3] + HOURS_OF_MARCH_28[4:] + HOURS_OF_MARCH_29[:6],
            ["2026-03-28-03:00", "2026-03-29-06:00...2026-03-29-09:00"],
        ),
        # Across midnight: the last hour of the day before.
        ("hourly_aggregates_schedule", (2026, 3, 29, 0, 5), HOURS_OF_MARCH_28[:23], ["2026-03-28-23:00"]),
        ("daily_aggregates_schedule", (2026, 3, 29, 1, 0), [], ["2026-03-28"]),
        ("daily_aggregates_schedule", (2026, 3, 30, 1, 0), ["2026-03-29"], ["2026-03-28...2026-03-29"]),
    ],
)
def test_partitioned_schedules_request_what_just_ended_and_what_is_not_built(
    dbt_env, database_url, tmp_path, monkeypatch, schedule_name, tick, built, requested
):
    from dagster import AssetMaterialization, DagsterInstance, build_schedule_context

    from eventtrack.settings import Settings
    from orchestration.definitions import build_definitions
    from orchestration.runner import prepare_dagster_instance

    defs = build_definitions(Settings(partitions_start_date=date(2026, 3, 28)))
    schedule = defs.resolve_schedule_def(schedule_name)
    env = prepare_dagster_instance(Settings(database_url=database_url, data_dir=tmp_path))
    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        asset_keys = defs.resolve_job_def(schedule.job_name).asset_layer.selected_asset_keys
        instance.wipe_assets(list(asset_keys))  # the storage is shared with the other tests
        for asset_key in asset_keys:
            for key in built:
                instance.report_runless_asset_event(AssetMaterialization(asset_key=asset_key, partition=key))
        tick_at = datetime(*tick, tzinfo=UTC)
        repository = defs.get_repository_def()
        with build_schedule_context(
            instance=instance, scheduled_execution_time=tick_at, repository_def=repository
        ) as context:
            requests = schedule.evaluate_tick(context).run_requests
    assert [
        r.partition_key or f"{r.partition_key_range.start}...{r.partition_key_range.end}" for r in requests
    ] == requested


def test_dbt_runs_get_the_session_timeout_and_the_partition_window(dbt_env):
    from dagster import build_asset_context

    from orchestration.dbt import dbt_vars
    from orchestration.resources import EventtrackResource

    eventtrack = EventtrackResource(database_url="", session_timeout_minutes=45, churn_horizon_days=30)
    assert dbt_vars(eventtrack, build_asset_context()) == {
        "session_timeout_minutes": 45,
        "arrival_settle_minutes": 5,
        "churn_horizon_days": 30,
        "churn_cutoff_weeks": 8,
    }


def test_the_views_built_at_start_up_get_the_settings_session_timeout(pipeline, db, database_url):
    from eventtrack.settings import Settings
    from orchestration.runner import build_dbt_views

    def timeout_in_view() -> list[str]:
        (sql,) = db.execute("SELECT pg_get_viewdef('analytics_intermediate.int_events_sessionized')").fetchone()
        return sorted(set(re.findall(r"'(\d\d:\d\d:\d\d)'::interval", sql)))

    try:
        build_dbt_views(Settings(database_url=database_url, session_timeout_minutes=45))
        assert timeout_in_view() == ["00:45:00"]
    finally:  # the other tests' views: the default timeout
        build_dbt_views(Settings(database_url=database_url))
    assert timeout_in_view() == ["00:30:00"]


def test_dbt_fails_clearly_without_the_session_timeout_var(dbt_env, tmp_path):
    """dbt_project.yml has no second default for the setting: a run that does not pass it fails and says why."""
    from orchestration.resources import DBT_COMMAND, DBT_PROJECT_DIR, venv_executable

    project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    command = [venv_executable(DBT_COMMAND), "compile", "--select", "int_events_sessionized", *project]
    output = ["--target-path", str(tmp_path), "--log-path", str(tmp_path)]
    failed = subprocess.run([*command, *output], cwd=DBT_PROJECT_DIR, capture_output=True, text=True)
    assert failed.returncode != 0
    assert "dbt var session_timeout_minutes is missing" in failed.stdout, failed.stdout
    passed = subprocess.run([*command, *output, *dbt_vars_arg()], cwd=DBT_PROJECT_DIR, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout


def test_dagster_instance_keeps_its_state_in_its_own_postgres_database(database_url, tmp_path, monkeypatch):
    from dagster import DagsterInstance

    from eventtrack.settings import Settings
    from orchestration.runner import dagster_commands, prepare_dagster

    settings = Settings(database_url=database_url, data_dir=tmp_path)
    env = prepare_dagster(settings)
    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])

    instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_storage.postgres_url.endswith("/dagster?host=" + env["EVENTTRACK_DB_HOST"])
        limits = instance.get_concurrency_config()
        assert limits.pool_config.default_pool_limit == 1
        assert [dict(limit) for limit in limits.run_queue_config.tag_concurrency_limits] == [
            {"key": "eventtrack/dbt", "limit": 1}
        ]
    finally:
        instance.dispose()
    for argv in dagster_commands(settings).values():
        assert os.path.exists(argv[0])


def test_catch_up_builds_every_partition_and_mart_in_runs_of_named_jobs(
    pipeline, db, database_url, tmp_path, monkeypatch
):
    from dagster import AssetKey, DagsterInstance

    from eventtrack.settings import Settings
    from orchestration.partitions import daily_partitions, hourly_partitions
    from orchestration.runner import catch_up, prepare_dagster

    now = datetime.now(UTC)
    # Three days of events, the first of them before the partitions' start: aggregated all the same.
    start = utc_day(now) - timedelta(days=2)
    rows = random_events(random.Random(3), now - timedelta(days=3), 60, 90, received_at=now - timedelta(hours=1))
    insert_events(db, rows)
    settings = Settings(database_url=database_url, data_dir=tmp_path, partitions_start_date=start)
    env = prepare_dagster(settings)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    marts = {
        AssetKey(["analytics", "agg_events_hourly"]): hourly_partitions(start),
        # Judged in the same runs as the hourly aggregates (orchestration/anomalies.py).
        AssetKey(["analytics", "agg_event_volume_anomalies"]): hourly_partitions(start),
        AssetKey(["analytics", "agg_events_daily"]): daily_partitions(start),
        AssetKey(["analytics", "agg_active_users_daily"]): daily_partitions(start),
    }

    # The instance's storage (the server's `dagster` database) may hold runs of other tests: count this one's,
    # and forget the marts' materializations so far.
    with DagsterInstance.get() as instance:
        before = {run.run_id for run in instance.get_runs()}
        instance.wipe_assets(list(marts))

    assert catch_up(settings)

    assert_marts_match_raw(db)
    with DagsterInstance.get() as instance:
        runs = [run for run in instance.get_runs() if run.run_id not in before]
        # One run each, the partitioned jobs included: a run covers all their missing partitions.
        assert sorted(run.job_name for run in runs) == sorted(
            [
                "session_closure",
                "raw_maintenance",
                "sessions_and_staging",
                "experiment_results",
                "churn_scores",
                "hourly_aggregates",
                "daily_aggregates",
            ]
        )
        for key, partitions in marts.items():
            complete = partitions.get_partition_keys(current_time=now)
            first = partitions.time_window_for_partition_key(complete[0]).start
            assert first == datetime.combine(start, datetime.min.time(), UTC)
            assert set(complete) <= instance.get_materialized_partitions(key), key
    (results,) = db.execute("SELECT to_regclass('analytics.agg_experiment_results') IS NOT NULL").fetchone()
    assert results


def test_dbt_unit_tests_pass(pipeline, tmp_path):
    """The dbt unit tests (sessionization gaps, late rows, partition window); they need the models' tables to exist."""
    from orchestration.dbt import dbt_resource

    dbt = dbt_resource()
    dbt.cli(["run", "--empty", *dbt_vars_arg()], target_path=tmp_path / "run").wait()
    invocation = dbt.cli(["test", "--select", "test_type:unit", *dbt_vars_arg()], target_path=tmp_path / "test").wait()
    # (not the on-run-start hook's result: macros/rename_legacy_marts.sql)
    results = [
        r for r in invocation.get_artifact("run_results.json")["results"] if r["unique_id"].startswith("unit_test.")
    ]
    assert len(results) >= 5
    assert {r["status"] for r in results} == {"pass"}


def test_incremental_runs_compare_arrivals_with_a_literal_watermark(pipeline, db, tmp_path):
    """The previous watermark is inlined as a number: compared with a subquery, the planner cannot use the
    statistics and BRIN index of ingest_seq and scans every partition (the pipeline benchmark's cost)."""
    from orchestration.dbt import dbt_resource

    dbt = dbt_resource()
    dbt.cli(["run", "--select", "+agg_events_hourly", *dbt_vars_arg()], target_path=tmp_path / "first").wait()
    db.execute("UPDATE analytics.agg_events_hourly SET _ingest_seq_watermark = 4242")
    db.execute(
        "INSERT INTO analytics.agg_events_hourly (hour, event_type, event_count, _ingest_seq_watermark)"
        " VALUES (now(), 'x', 1, 4242)"
    )
    dbt.cli(["compile", "--select", "agg_events_hourly", *dbt_vars_arg()], target_path=tmp_path / "compiled").wait()
    [compiled] = (tmp_path / "compiled").rglob("agg_events_hourly.sql")
    sql = compiled.read_text()
    assert "ingest_seq > 4242::bigint" in sql
    assert "max(_ingest_seq_watermark)" not in sql


def test_a_long_partition_window_is_planned_as_a_hash_join_of_events_and_buckets(pipeline, db, tmp_path):
    """Catch-up and backfills pass windows of months. Events were matched to the window's buckets by a range
    test, a nested loop over events x buckets: 8 minutes for 300,000 events and a 700-day window, where the
    whole model now takes 2 s."""
    from orchestration.dbt import dbt_resource

    now = datetime.now(UTC)
    # Enough events for the planner to weigh a join at all (with a handful it loops over them either way).
    db.execute(
        'INSERT INTO events (uuid, event_type, distinct_id, "timestamp", received_at)'
        " SELECT gen_random_uuid(), 'e', 'u' || i %% 50, %(start)s + i * interval '2 minutes', %(start)s FROM generate_series(1, 2000) i",
        {"start": now - timedelta(days=3)},
    )
    db.execute("ANALYZE events")
    dbt = dbt_resource()
    dbt.cli(["run", "--select", "+agg_events_hourly", *dbt_vars_arg()], target_path=tmp_path / "first").wait()
    window = window_vars(now - timedelta(days=700), now)
    dbt.cli(
        ["compile", "--select", "agg_events_hourly", *dbt_vars_arg(**window)], target_path=tmp_path / "compiled"
    ).wait()
    [compiled] = (tmp_path / "compiled").rglob("agg_events_hourly.sql")
    plan = "\n".join(row[0] for row in db.execute("EXPLAIN " + compiled.read_text()))
    assert "Hash Cond: (date_trunc('hour'::text, events.event_at, 'UTC'::text) = buckets.bucket_start)" in plan, plan


def test_rows_of_a_transaction_still_open_during_a_run_are_counted_by_the_next_run(pipeline, db, database_url):
    """A still-uncommitted ingest transaction holds a lower ingest_seq than rows committed after it:
    the watermark must not move past it, or those rows would never be aggregated."""
    from orchestration.dbt import dbt_models

    pipeline.materialize([dbt_models])  # the staging views
    now = datetime.now(UTC)
    hour = utc_hour(now - timedelta(hours=3))
    other_hour_key = (hour - timedelta(hours=5)).strftime("%Y-%m-%d-%H:%M")
    insert_events(db, [event(hour + timedelta(minutes=1), "u1", "d1", received_at=now - timedelta(hours=1))])
    with psycopg.connect(database_url) as in_flight:
        insert_events(in_flight, [event(hour + timedelta(minutes=2), "u2", "d2", received_at=now)])  # lower seq, open
        insert_events(db, [event(hour + timedelta(minutes=3), "u3", "d3", received_at=now)])  # higher seq, committed
        pipeline.materialize([pipeline.hourly_aggregates], partition_key=other_hour_key)
        assert db.execute("SELECT sum(event_count) FROM analytics.agg_events_hourly").fetchone() == (2,)
        in_flight.commit()

    pipeline.materialize([pipeline.hourly_aggregates], partition_key=other_hour_key)

    assert db.execute("SELECT hour, sum(event_count) FROM analytics.agg_events_hourly GROUP BY hour").fetchall() == [
        (hour, 3)
    ]
