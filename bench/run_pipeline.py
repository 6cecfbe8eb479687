"""`make bench-pipeline`: the pipeline (Dagster + dbt marts) benchmark.

For each dataset size (BENCH_ROWS_SMALL, default 1,000,000 events, and
BENCH_ROWS_LARGE, default 10,000,000), on this machine, against a fresh
throwaway embedded Postgres:

1. load: synthetic events over the 30 days before the last complete hour,
   generated in SQL (INSERT ... SELECT FROM generate_series, in arrival order:
   ingest_seq grows with the event time), ~2000 users with skewed activity,
   several event types / app versions / OS, ~70% of events with an explicit
   session_id; received_at = timestamp (at least 10 minutes ago, older than the
   arrival settle window, so the watermark advances); then ANALYZE.
2. initial build ("full refresh"): dbt_models (staging views, fct_sessions),
   then dbt_hourly_aggregates and dbt_daily_aggregates for the last complete
   hour / day, materialized through Dagster exactly like the integration tests
   (first run of an incremental model: watermark 0, every bucket is built).
3. hourly run: one new hour of events (rows / 720, timestamps in the last
   complete hour, received 10 minutes ago) is inserted, then
   dbt_hourly_aggregates is materialized for that hour's partition.
4. late-data run: a few late events land in each of 24 old hours (2 to 26
   days ago), then the same hourly partition is materialized again (the
   arrival watermark makes it rebuild those 24 hours).
5. retention prune of one day, on the same dataset: DROP TABLE of one day's
   partition, as orchestration/maintenance.py does (in a transaction with its
   lock_timeout and its count(*) of the rows, timed separately), versus a
   DELETE of the rows of the neighbouring day (same row count, same shape)
   through the partitioned table, and the VACUUM that the DELETE then needs.

Target: the cost of an hourly run follows the new data, not the history:
hourly_run(large) / hourly_run(small) <= 1.5 (wall time of the Dagster
materialization, which includes the dbt subprocess start; dbt's own execution
time of the model is reported too).

Results: bench/results/pipeline.json, plus a summary on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import host_info, throwaway_postgres
from eventtrack.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
RESULTS_FILE = RESULTS_DIR / "pipeline.json"

HOURLY_RATIO_TARGET = 1.5
HISTORY_DAYS = 30
HOURS_OF_HISTORY = HISTORY_DAYS * 24  # 720: one new hour = rows / 720
LATE_HOURS = 24
USERS = 2000
# Drawn uniformly from this list: repeats weight a type (screen_view 50%, app_open 10%, ...).
EVENT_TYPES = ("screen_view",) * 5 + ("button_tap",) * 2 + ("app_open", "add_to_cart", "purchase")
LOAD_CHUNK_ROWS = 1_000_000


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip().replace("_", "")
    return int(raw) if raw else default


ROWS_SMALL = _env_int("BENCH_ROWS_SMALL", 1_000_000)
ROWS_LARGE = _env_int("BENCH_ROWS_LARGE", 10_000_000)


def log(message: str) -> None:
    print(f"[bench-pipeline {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- synthetic events

# One row of `events` per generate_series value g, for a time slice [t0, t1):
# the timestamp grows with g (arrival order = event order, as from live SDKs),
# users are skewed (a few heavy users, a long tail), ~70% of events carry an
# explicit session id (per user and half hour), the rest are sessionized by gaps.
_INSERT_EVENTS = """
INSERT INTO events (uuid, event_type, distinct_id, properties, device_id, session_id, app_version,
                    os_name, os_version, "timestamp", client_timestamp, sent_at, received_at)
SELECT gen_random_uuid(),
       (%(event_types)s::text[])[1 + (r.a * cardinality(%(event_types)s::text[]))::int %% cardinality(%(event_types)s::text[])],
       'user-' || r.u,
       jsonb_build_object('screen', (ARRAY['home','search','product','cart','checkout','settings'])[1 + (r.b * 6)::int %% 6],
                          'value', round((r.b * 100)::numeric, 2)),
       'device-' || r.u || '-' || (CASE WHEN r.c < 0.85 THEN 0 ELSE 1 END),
       CASE WHEN r.c < 0.7 THEN md5(r.u::text || '/' || floor(extract(epoch FROM r.ts) / 1800)::text)::uuid::text END,
       (ARRAY['3.12.0','3.13.1','3.14.0','3.14.2','4.0.0'])[1 + (r.u * 7) %% 5],
       CASE WHEN r.u %% 20 < 11 THEN 'iOS' ELSE 'Android' END,
       CASE WHEN r.u %% 20 < 11 THEN (ARRAY['16.7','17.4','17.5.1'])[1 + r.u %% 3]
            ELSE (ARRAY['13','14'])[1 + r.u %% 2] END,
       r.ts,
       r.ts - interval '2 seconds',
       r.ts + interval '5 seconds',
       LEAST(r.ts + interval '1 second', %(received_max)s::timestamptz)
FROM (
    SELECT floor(%(users)s * power(random(), 2))::int AS u,
           random() AS a, random() AS b, random() AS c,
           %(t0)s::timestamptz + (g - 1 + random()) * ((%(t1)s::timestamptz - %(t0)s::timestamptz) / %(n)s) AS ts
    FROM generate_series(1, %(n)s::bigint) AS g
) AS r
"""


def insert_events(
    conn: psycopg.Connection,
    n: int,
    t0: datetime,
    t1: datetime,
    received_max: datetime,
    users: int = USERS,
    event_types: tuple[str, ...] = EVENT_TYPES,
) -> None:
    params = {
        "n": n,
        "t0": t0,
        "t1": t1,
        "users": users,
        "received_max": received_max,
        "event_types": list(event_types),
    }
    conn.execute(_INSERT_EVENTS, params)


def load_history(
    url: str,
    rows: int,
    t0: datetime,
    t1: datetime,
    received_max: datetime,
    users: int = USERS,
    event_types: tuple[str, ...] = EVENT_TYPES,
) -> float:
    """`rows` events spread over [t0, t1), in chunks of consecutive time slices. Returns seconds."""
    start = time.perf_counter()
    span = t1 - t0
    with psycopg.connect(url, autocommit=True) as conn:
        done = 0
        while done < rows:
            n = min(LOAD_CHUNK_ROWS, rows - done)
            t_from, t_to = t0 + span * (done / rows), t0 + span * ((done + n) / rows)
            insert_events(conn, n, t_from, t_to, received_max, users, event_types)
            done += n
            log(f"  loaded {done:,}/{rows:,} rows ({time.perf_counter() - start:.0f} s)")
        conn.execute("ANALYZE")
    return time.perf_counter() - start


# --------------------------------------------------------------------------- Dagster runs


# Dagster's console logger at WARNING: its DEBUG events would bury the benchmark's output.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class Pipeline:
    """Materializes the dbt assets through Dagster, as tests/integration/test_pipeline.py does."""

    def __init__(self, database_url: str):
        from eventtrack.settings import Settings
        from orchestration.dbt import dbt_resource
        from orchestration.resources import EventtrackResource

        settings = Settings(database_url=database_url)
        self.resources = {"dbt": dbt_resource(), "eventtrack": EventtrackResource.from_settings(settings)}

    def materialize(self, assets, partition_key: str | None = None) -> dict[str, Any]:
        from dagster import materialize

        start = time.perf_counter()
        result = materialize(
            assets, resources=self.resources, partition_key=partition_key, raise_on_error=False, run_config=QUIET
        )
        elapsed = time.perf_counter() - start
        if not result.success:
            raise RuntimeError(f"materialization of {[a.op.name for a in assets]} ({partition_key}) failed")
        return {"seconds": round(elapsed, 3), "dbt_model_seconds": _dbt_durations(result)}


def _dbt_durations(result) -> dict[str, float]:
    """dbt's own execution time per materialized model (from dagster-dbt's metadata), when present."""
    durations: dict[str, float] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat is None:
            continue
        meta = mat.metadata or {}
        value = meta.get("Execution Duration")
        if value is not None:
            durations[mat.asset_key.to_user_string()] = round(float(getattr(value, "value", value)), 3)
    return durations


def count(url: str, sql: str, params: Any = None) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchone()[0]


# --------------------------------------------------------------------------- retention


def partition_name(day: date) -> str:
    return f"events_p{day:%Y%m%d}"


def retention_prune(url: str, drop_day: date, delete_day: date) -> dict[str, Any]:
    """DROP of drop_day's partition (as maintenance does) vs DELETE of delete_day's rows + VACUUM."""
    drop_part, delete_part = partition_name(drop_day), partition_name(delete_day)
    with psycopg.connect(url, autocommit=True) as conn:
        drop_rows = conn.execute(f'SELECT count(*) FROM "{drop_part}"').fetchone()[0]
        delete_rows = conn.execute(f'SELECT count(*) FROM "{delete_part}"').fetchone()[0]
        size = {
            name: conn.execute("SELECT pg_total_relation_size(%s)", (name,)).fetchone()[0]
            for name in (drop_part, delete_part)
        }

        # DELETE of a whole day through the partitioned table (partition pruning keeps it to that day).
        lo = datetime.combine(delete_day, datetime.min.time(), tzinfo=UTC)
        start = time.perf_counter()
        with conn.transaction():
            deleted = conn.execute(
                'DELETE FROM events WHERE "timestamp" >= %s AND "timestamp" < %s', (lo, lo + timedelta(days=1))
            ).rowcount
        delete_s = time.perf_counter() - start
        start = time.perf_counter()
        conn.execute(f'VACUUM "{delete_part}"')
        vacuum_s = time.perf_counter() - start

        # DROP as orchestration.maintenance.drop_expired_event_partitions: lock_timeout, count(*), DROP TABLE.
        start = time.perf_counter()
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '5s'")
            counted = conn.execute(f'SELECT count(*) FROM "{drop_part}"').fetchone()[0]
            count_s = time.perf_counter() - start
            conn.execute(f'DROP TABLE "{drop_part}"')
        drop_total_s = time.perf_counter() - start
    return {
        "drop": {
            "partition": drop_part,
            "rows": drop_rows,
            "bytes_with_indexes": size[drop_part],
            "seconds_total": round(drop_total_s, 4),
            "seconds_count_star": round(count_s, 4),
            "seconds_drop_table_and_commit": round(drop_total_s - count_s, 4),
            "rows_counted": counted,
        },
        "delete": {
            "partition": delete_part,
            "rows": delete_rows,
            "bytes_with_indexes": size[delete_part],
            "rows_deleted": deleted,
            "seconds_delete_and_commit": round(delete_s, 4),
            "seconds_vacuum_after": round(vacuum_s, 4),
        },
        "delete_over_drop": round(delete_s / drop_total_s, 1) if drop_total_s else None,
        "delete_plus_vacuum_over_drop": round((delete_s + vacuum_s) / drop_total_s, 1) if drop_total_s else None,
    }


# --------------------------------------------------------------------------- one dataset


def run_size(rows: int) -> dict[str, Any]:
    from orchestration.dbt import aggregate_assets, dbt_models
    from orchestration.partitions import last_complete_partition_key
    from orchestration.resources import dbt_connection_env

    out: dict[str, Any] = {"rows": rows}
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        os.environ.update(dbt_connection_env(url))
        pipeline = Pipeline(url)
        out["postgres"] = _pg_info(url)

        now = datetime.now(UTC)
        dbt_hourly_aggregates, dbt_daily_aggregates = aggregate_assets((now - timedelta(days=HISTORY_DAYS + 2)).date())
        hourly_partitions = dbt_hourly_aggregates.partitions_def
        hour_key = last_complete_partition_key(hourly_partitions, now)
        day_key = last_complete_partition_key(dbt_daily_aggregates.partitions_def, now)
        new_hour = hourly_partitions.time_window_for_partition_key(hour_key).start.astimezone(UTC)
        settled = now - timedelta(minutes=10)
        history_start = new_hour - timedelta(days=HISTORY_DAYS)

        log(f"{rows:,} rows: loading history {history_start:%Y-%m-%d %H:%M} .. {new_hour:%Y-%m-%d %H:%M} UTC")
        load_s = load_history(url, rows, history_start, new_hour, settled)
        out["load"] = {
            "seconds": round(load_s, 1),
            "rows_per_s": round(rows / load_s),
            "history": [history_start.isoformat(), new_hour.isoformat()],
            "events_table_bytes": count(
                url,
                "SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits WHERE inhparent = 'events'::regclass",
            ),
        }
        log(f"loaded in {load_s:.0f} s")

        # 1. initial build: the first run of everything (incremental aggregates: watermark 0, all buckets).
        log("initial build: dbt_models")
        steps = {"dbt_models": pipeline.materialize([dbt_models])}
        log(f"  {steps['dbt_models']['seconds']:.1f} s; dbt_hourly_aggregates {hour_key}")
        steps["dbt_hourly_aggregates"] = pipeline.materialize([dbt_hourly_aggregates], partition_key=hour_key)
        log(f"  {steps['dbt_hourly_aggregates']['seconds']:.1f} s; dbt_daily_aggregates {day_key}")
        steps["dbt_daily_aggregates"] = pipeline.materialize([dbt_daily_aggregates], partition_key=day_key)
        log(f"  {steps['dbt_daily_aggregates']['seconds']:.1f} s")
        out["initial_build"] = {
            "seconds": round(sum(s["seconds"] for s in steps.values()), 3),
            "steps": steps,
            "hourly_buckets": count(url, "SELECT count(DISTINCT hour) FROM analytics.agg_events_hourly"),
            "fct_sessions_rows": count(url, "SELECT count(*) FROM analytics.fct_sessions"),
        }

        # 2. hourly run: one new hour of data.
        hour_rows = max(1, rows // HOURS_OF_HISTORY)
        with psycopg.connect(url, autocommit=True) as conn:
            insert_events(conn, hour_rows, new_hour, new_hour + timedelta(hours=1), settled)
            conn.execute("ANALYZE events")
        log(f"hourly run: {hour_rows:,} new events in {hour_key}")
        run = pipeline.materialize([dbt_hourly_aggregates], partition_key=hour_key)
        run["new_rows"] = hour_rows
        run["partition"] = hour_key
        out["hourly_run"] = run
        log(f"  {run['seconds']:.1f} s")
        expected = count(
            url,
            'SELECT count(*) FROM events WHERE "timestamp" >= %s AND "timestamp" < %s',
            (new_hour, new_hour + timedelta(hours=1)),
        )
        got = count(
            url, "SELECT coalesce(sum(event_count), 0) FROM analytics.agg_events_hourly WHERE hour = %s", (new_hour,)
        )
        if got != expected:
            raise RuntimeError(f"hourly aggregate of {hour_key}: {got} events, raw table has {expected}")

        # 3. late data: events arriving now for 24 old hours (2..26 days ago, various hours of the day).
        per_hour = max(10, rows // HOURS_OF_HISTORY // 20)
        late_hours = [new_hour - timedelta(hours=48 + 25 * k) for k in range(LATE_HOURS)]
        with psycopg.connect(url, autocommit=True) as conn:
            for h in late_hours:
                insert_events(conn, per_hour, h, h + timedelta(hours=1), settled)
        log(f"late-data run: {per_hour * LATE_HOURS:,} late events in {LATE_HOURS} old hours")
        run = pipeline.materialize([dbt_hourly_aggregates], partition_key=hour_key)
        run["late_rows"] = per_hour * LATE_HOURS
        run["late_hours"] = [h.isoformat() for h in late_hours]
        run["rows_in_rebuilt_hours"] = count(
            url,
            "SELECT count(*) FROM events WHERE date_trunc('hour', \"timestamp\", 'UTC') = ANY(%s)",
            (late_hours + [new_hour],),
        )
        out["late_data_run"] = run
        log(f"  {run['seconds']:.1f} s")
        for h in late_hours[:3]:
            expected = count(
                url,
                'SELECT count(*) FROM events WHERE "timestamp" >= %s AND "timestamp" < %s',
                (h, h + timedelta(hours=1)),
            )
            got = count(
                url, "SELECT coalesce(sum(event_count), 0) FROM analytics.agg_events_hourly WHERE hour = %s", (h,)
            )
            if got != expected:
                raise RuntimeError(f"late hour {h}: aggregate has {got} events, raw table has {expected}")

        # 4. retention of one day: two neighbouring full days, older than every late hour.
        today = new_hour.date()
        drop_day, delete_day = today - timedelta(days=HISTORY_DAYS - 2), today - timedelta(days=HISTORY_DAYS - 3)
        log(f"retention: DROP {partition_name(drop_day)} vs DELETE of {partition_name(delete_day)}'s rows")
        out["retention_prune"] = retention_prune(url, drop_day, delete_day)
        r = out["retention_prune"]
        log(
            f"  DROP {r['drop']['seconds_total']:.3f} s, DELETE {r['delete']['seconds_delete_and_commit']:.2f} s"
            f" (+ VACUUM {r['delete']['seconds_vacuum_after']:.2f} s)"
        )
    return out


# --------------------------------------------------------------------------- report


def _pg_info(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            "version": conn.execute("SHOW server_version").fetchone()[0],
            "settings": {
                name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in (
                    "shared_buffers",
                    "work_mem",
                    "maintenance_work_mem",
                    "max_wal_size",
                    "synchronous_commit",
                    "max_parallel_workers_per_gather",
                )
            },
        }


def _machine() -> dict[str, Any]:
    return host_info()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None
    except OSError:
        return None


def _summary(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "",
        f"Pipeline benchmark ({results['timestamp']}; {m['cpus']} CPUs {m['cpu_model']}; "
        f"Postgres {results['sizes'][0]['postgres']['version']}, embedded, default settings)",
        "",
        f"{'':34}" + "".join(f"{r['rows']:>16,}" for r in results["sizes"]),
        f"{'load (INSERT..SELECT + ANALYZE)':34}"
        + "".join(f"{r['load']['seconds']:>14.1f} s" for r in results["sizes"]),
        f"{'initial build (full refresh)':34}"
        + "".join(f"{r['initial_build']['seconds']:>14.1f} s" for r in results["sizes"]),
    ]
    for step in ("dbt_models", "dbt_hourly_aggregates", "dbt_daily_aggregates"):
        lines.append(
            f"{'  ' + step:34}"
            + "".join(f"{r['initial_build']['steps'][step]['seconds']:>14.1f} s" for r in results["sizes"])
        )
    lines += [
        f"{'hourly run (1 new hour)':34}" + "".join(f"{r['hourly_run']['seconds']:>14.1f} s" for r in results["sizes"]),
        f"{'  dbt agg_events_hourly':34}" + "".join(f"{_model_s(r['hourly_run']):>16}" for r in results["sizes"]),
        f"{'late-data run (24 old hours)':34}"
        + "".join(f"{r['late_data_run']['seconds']:>14.1f} s" for r in results["sizes"]),
        f"{'  dbt agg_events_hourly':34}" + "".join(f"{_model_s(r['late_data_run']):>16}" for r in results["sizes"]),
        f"{'retention: DROP partition (1 day)':34}"
        + "".join(f"{r['retention_prune']['drop']['seconds_total']:>14.3f} s" for r in results["sizes"]),
        f"{'  of which DROP TABLE + commit':34}"
        + "".join(
            f"{r['retention_prune']['drop']['seconds_drop_table_and_commit']:>14.3f} s" for r in results["sizes"]
        ),
        f"{'retention: DELETE same-size day':34}"
        + "".join(f"{r['retention_prune']['delete']['seconds_delete_and_commit']:>14.3f} s" for r in results["sizes"]),
        f"{'  + VACUUM after the DELETE':34}"
        + "".join(f"{r['retention_prune']['delete']['seconds_vacuum_after']:>14.3f} s" for r in results["sizes"]),
        "",
    ]
    h = results["hourly_ratio"]
    lines.append(
        f"hourly run ({h['large_rows']:,}) / hourly run ({h['small_rows']:,}) = {h['wall']:.2f} (wall)"
        + (f", {h['dbt_model']:.2f} (dbt model time)" if h.get("dbt_model") is not None else "")
        + f"; target <= {HOURLY_RATIO_TARGET}: {'MET' if h['met'] else 'NOT MET'}"
    )
    return "\n".join(lines)


def _model_s(run: dict[str, Any]) -> str:
    values = [v for k, v in run["dbt_model_seconds"].items() if "agg_events_hourly" in k]
    return f"{values[0]:.2f} s" if values else "n/a"


def _model_seconds(run: dict[str, Any]) -> float | None:
    values = [v for k, v in run["dbt_model_seconds"].items() if "agg_events_hourly" in k]
    return values[0] if values else None


def main() -> int:
    def _terminate(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    from orchestration.runner import prepare_dbt_manifest

    started = datetime.now(UTC)
    machine = _machine()
    prepare_dbt_manifest()
    sizes = []
    with ExitStack():
        for rows in (ROWS_SMALL, ROWS_LARGE):
            sizes.append(run_size(rows))
    small, large = sizes[0], sizes[-1]
    wall = large["hourly_run"]["seconds"] / small["hourly_run"]["seconds"]
    ms, ml = _model_seconds(small["hourly_run"]), _model_seconds(large["hourly_run"])
    results = {
        "timestamp": started.isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "machine": machine,
        "config": {
            "rows_small": ROWS_SMALL,
            "rows_large": ROWS_LARGE,
            "history_days": HISTORY_DAYS,
            "users": USERS,
            "late_hours": LATE_HOURS,
            "timing": "wall time of dagster.materialize (in process, ephemeral instance; includes the dbt subprocess);"
            " dbt_model_seconds: dbt's execution time per model (dagster-dbt metadata)",
        },
        "sizes": sizes,
        "hourly_ratio": {
            "small_rows": small["rows"],
            "large_rows": large["rows"],
            "wall": round(wall, 3),
            "dbt_model": round(ml / ms, 3) if ms and ml else None,
            "target": HOURLY_RATIO_TARGET,
            "met": wall <= HOURLY_RATIO_TARGET,
        },
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(_summary(results))
    print(f"\nresults: {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; Postgres stopped", file=sys.stderr)
        raise SystemExit(130) from None
