"""`make bench-experiments`: refresh of the experiment results with 1M exposures.

Against a fresh throwaway embedded Postgres:

1. generate BENCH_EXPOSED_USERS users (default 1,000,000) exposed to a
   two-variant flag over 14 days (a quarter of them exposed twice), 0.3% of
   them exposed to both variants, a `purchase` goal event for ~10% of control
   and ~11% of test users, an `add_to_cart` secondary event for ~30%, and as
   many unrelated `screen_view` events as exposed users. Two experiments on the
   flag (goal `purchase` with secondary `add_to_cart`, and goal `add_to_cart`),
   so 2M (experiment, user) pairs are computed.
2. COPY the events of the first 11 days, VACUUM ANALYZE, build the dbt views as
   `eventtrack up` does (not timed), then the first build of the results,
   timed: every event is new to the exposures model (what a changed experiment
   definition also costs); then the same job with nothing new (the fixed cost
   of a Dagster + dbt run on this machine, the in-run baseline).
3. three times: COPY the next day's events (they arrive, as a day's do), then
   the daily refresh, timed: the `experiment_results` job's selection (the
   experiment dbt models, then the statistics asset) materialized through
   Dagster, wall time including the dbt subprocess start. The last refresh
   covers every exposed user.

Target: refresh under 10 s (the daily refreshes). Exposures and conversions are
checked against a direct SQL count over the raw events.
Results: bench/results/experiments.json, plus a summary on stdout.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from bench.run_ingest import throwaway_postgres
from bench.run_pipeline import QUIET, RESULTS_DIR, _dbt_durations, _machine, _pg_info
from eventtrack.migrate import migrate

RESULTS_FILE = RESULTS_DIR / "experiments.json"
TARGET_SECONDS = 10.0
USERS = int(os.environ.get("BENCH_EXPOSED_USERS", "1000000").replace("_", ""))
DAYS = 14
REFRESHES = 3  # the last days of the 14 arrive one by one
FLAG = "checkout-v2"


def log(message: str) -> None:
    print(f"[bench-experiments {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _rows(start: datetime, rng: random.Random):
    """(event_type, distinct_id, properties json, timestamp) of the synthetic data."""
    span = DAYS * 86400
    for i in range(USERS):
        user = f"user-{i}"
        seen = start + timedelta(seconds=rng.random() * (span - 7200))
        variant = "control" if i % 2 == 0 else "test"
        exposure = {"$feature_flag": FLAG, "$feature_flag_response": variant}
        yield "$feature_flag_called", user, exposure, seen
        if i % 4 == 0:
            yield "$feature_flag_called", user, exposure, seen + timedelta(minutes=30)
        if i % 333 == 0:  # exposed to the other variant too
            other = "test" if variant == "control" else "control"
            yield (
                "$feature_flag_called",
                user,
                {"$feature_flag": FLAG, "$feature_flag_response": other},
                seen + timedelta(minutes=5),
            )
        if rng.random() < (0.10 if variant == "control" else 0.11):
            yield "purchase", user, {"value": 20}, seen + timedelta(minutes=rng.randrange(1, 90))
        if rng.random() < 0.3:
            yield "add_to_cart", user, {}, seen + timedelta(minutes=1)
        yield (
            "screen_view",
            f"user-{rng.randrange(USERS)}",
            {"screen": "home"},
            start + timedelta(seconds=rng.random() * span),
        )


def copy_events(url: str, rows: list[tuple]) -> dict[str, Any]:
    """COPY (event_type, distinct_id, properties, timestamp) rows, received (settled) ten minutes ago."""
    began = time.perf_counter()
    received = datetime.now(UTC) - timedelta(minutes=10)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy(
            'COPY events (uuid, event_type, distinct_id, properties, "timestamp", received_at) FROM STDIN'
        ) as copy:
            for event_type, user, properties, ts in rows:
                copy.write_row((uuid.uuid4(), event_type, user, orjson.dumps(properties).decode(), ts, received))
    return {"events": len(rows), "seconds": round(time.perf_counter() - began, 1)}


def create_experiments(url: str, start: datetime) -> None:
    variants = [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}]
    split = orjson.dumps([{"key": v["key"], "expected_percentage": v["rollout_percentage"]} for v in variants]).decode()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO feature_flags (key, name, rollout_percentage, variants) VALUES (%s, %s, 100, %s)",
            (FLAG, FLAG, orjson.dumps(variants).decode()),
        )
        for name, goal, secondary in (
            ("Checkout v2", "purchase", ["add_to_cart"]),
            ("Checkout v2 (cart)", "add_to_cart", []),
        ):
            conn.execute(
                "INSERT INTO experiments (name, flag_key, control_variant, goal_event, secondary_events, variants, start_at, end_at)"
                " VALUES (%s, %s, 'control', %s, %s, %s, %s, %s)",
                (name, FLAG, goal, orjson.dumps(secondary).decode(), split, start, start + timedelta(days=DAYS)),
            )


def direct_counts(url: str, start: datetime) -> dict[str, tuple[int, int]]:
    """Single-variant exposed users and those who purchased at or after their first exposure, per variant, from raw events."""
    end = start + timedelta(days=DAYS)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET work_mem = '256MB'")
        rows = conn.execute(
            """WITH exposed AS (
                   SELECT distinct_id, min("timestamp") AS first_at, min(properties->>'$feature_flag_response') AS variant
                   FROM events
                   WHERE event_type = '$feature_flag_called' AND "timestamp" >= %(start)s AND "timestamp" < %(end)s
                   GROUP BY distinct_id
                   HAVING count(DISTINCT properties->>'$feature_flag_response') = 1
               ),
               last_purchase AS (
                   SELECT distinct_id, max("timestamp") AS at FROM events
                   WHERE event_type = 'purchase' AND "timestamp" >= %(start)s AND "timestamp" < %(end)s
                   GROUP BY distinct_id
               )
               SELECT x.variant, count(*), count(*) FILTER (WHERE p.at >= x.first_at)
               FROM exposed x LEFT JOIN last_purchase p USING (distinct_id)
               GROUP BY x.variant""",
            {"start": start, "end": end},
        ).fetchall()
    return {variant: (n, converted) for variant, n, converted in rows}


def main() -> int:
    from dagster import AssetSelection, materialize

    from eventtrack.settings import Settings
    from orchestration.dbt import dbt_models, dbt_resource
    from orchestration.experiments import EXPERIMENT_DBT_MODELS, experiment_results
    from orchestration.resources import EventtrackResource, dbt_connection_env
    from orchestration.runner import build_dbt_views, prepare_dbt_manifest

    prepare_dbt_manifest()
    out: dict[str, Any] = {"machine": _machine(), "exposed_users": USERS, "target_seconds": TARGET_SECONDS}
    start = (datetime.now(UTC) - timedelta(days=DAYS, hours=1)).replace(microsecond=0)
    log(f"generating {USERS:,} exposed users")
    by_day: dict[int, list[tuple]] = {}
    for row in _rows(start, random.Random(7)):
        by_day.setdefault(min(int((row[3] - start).total_seconds() // 86400), DAYS - 1), []).append(row)
    first_days = DAYS - REFRESHES
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        os.environ.update(dbt_connection_env(url))
        out["postgres"] = _pg_info(url)
        resources = {"dbt": dbt_resource(), "eventtrack": EventtrackResource.from_settings(Settings(database_url=url))}
        create_experiments(url, start)

        log(f"loading the first {first_days} days with COPY")
        out["load"] = copy_events(url, [r for day in range(first_days) for r in by_day.get(day, [])])
        with psycopg.connect(url, autocommit=True) as conn:
            # What autovacuum has done to days-old partitions in production: statistics, and the
            # BRIN ranges of ingest_seq summarized (an unsummarized range matches every arrival scan).
            conn.execute("VACUUM ANALYZE events")
        log(f"  {out['load']['events']:,} events in {out['load']['seconds']} s")
        log("dbt views (as `eventtrack up` builds them; not timed)")
        build_dbt_views(Settings(database_url=url))

        selection = AssetSelection.assets(*EXPERIMENT_DBT_MODELS, experiment_results)

        def refresh(label: str) -> dict[str, Any]:
            began = time.perf_counter()
            result = materialize(
                [dbt_models, experiment_results],
                selection=selection,
                resources=resources,
                run_config=QUIET,
                raise_on_error=False,
            )
            seconds = time.perf_counter() - began
            if not result.success:
                raise RuntimeError(f"experiment refresh failed ({label})")
            with psycopg.connect(url, autocommit=True) as conn:
                (exposed,) = conn.execute(
                    "SELECT sum(exposures) FROM analytics.agg_experiment_results WHERE experiment_id = (SELECT min(id) FROM experiments)"
                ).fetchone()
            run = {
                "label": label,
                "seconds": round(seconds, 3),
                "exposed_users": int(exposed or 0),
                "dbt_model_seconds": _dbt_durations(result),
            }
            log(f"{label}: {seconds:.2f} s, {run['exposed_users']:,} exposed users {run['dbt_model_seconds']}")
            return run

        out["first_build"] = refresh(f"first build ({first_days} days of events, all new)")
        # The same job with nothing new: what any Dagster + dbt run costs here (the in-run baseline).
        out["no_op_refresh"] = refresh("refresh with nothing new")
        runs = []
        for day in range(first_days, DAYS):
            arrived = copy_events(url, by_day.get(day, []))
            log(f"day {day + 1} arrives: {arrived['events']:,} events in {arrived['seconds']} s")
            runs.append({**refresh(f"daily refresh after day {day + 1}"), "arrived_events": arrived["events"]})
        out["refreshes"] = runs
        out["median_seconds"] = sorted(r["seconds"] for r in runs)[len(runs) // 2]

        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT r.experiment_id, variant, exposures, conversions, multi_exposure_users, p_value, srm_p_value"
                " FROM analytics.agg_experiment_results r ORDER BY 1, 2"
            ).fetchall()
        out["results"] = [
            dict(
                zip(
                    (
                        "experiment_id",
                        "variant",
                        "exposures",
                        "conversions",
                        "multi_exposure_users",
                        "p_value",
                        "srm_p_value",
                    ),
                    r,
                )
            )
            for r in rows
        ]
        direct = direct_counts(url, start)
        computed = {r[1]: (r[2], r[3]) for r in rows if r[0] == rows[0][0]}
        if computed != direct:
            raise RuntimeError(
                f"experiment_results gives {computed} (exposed, converted) per variant, a direct count gives {direct}"
            )
        out["exposures_checked"] = exposed = sum(n for n, _ in direct.values())

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(out, indent=2, default=str) + "\n")
    verdict = "OK" if out["median_seconds"] < TARGET_SECONDS else "OVER TARGET"
    print(
        f"\nfirst build: {out['first_build']['seconds']:.2f} s; the job with nothing new: {out['no_op_refresh']['seconds']:.2f} s"
    )
    print(
        f"daily refresh, up to {exposed:,} exposed users: median {out['median_seconds']:.2f} s ({verdict}, target < {TARGET_SECONDS:.0f} s)"
    )
    print(f"results: {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
