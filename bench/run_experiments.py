"""`make bench-experiments`: refresh of the experiment results with 1M exposures.

Against a fresh throwaway embedded Postgres:

1. load with COPY into `events`: BENCH_EXPOSED_USERS users (default 1,000,000)
   exposed to a two-variant flag over the 14 days before now (a quarter of them
   exposed twice), 0.3% of them exposed to both variants, a `purchase` goal
   event for ~10% of control and ~11% of test users, an `add_to_cart` secondary
   event for ~30%, and as many unrelated `screen_view` events as exposed users;
   then ANALYZE. One flag and one experiment (plus the same experiment on a
   second goal, so two experiments are computed) are inserted.
2. the staging views are built once (dbt_models, as the 01:00 run does), not timed.
3. refresh, timed, three times: the `experiment_results` job's selection
   (the experiment dbt models, then the statistics asset) materialized through
   Dagster, wall time including the dbt subprocess start.

Target: refresh under 10 s. The counts are checked against a direct SQL count.
Results: bench/results/experiments.json, plus a summary on stdout.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import psycopg

from bench.run_ingest import throwaway_postgres
from bench.run_pipeline import QUIET, RESULTS_DIR, _dbt_durations, _machine, _pg_info
from ingest_api.migrate import migrate

RESULTS_FILE = RESULTS_DIR / "experiments.json"
TARGET_SECONDS = 10.0
USERS = int(os.environ.get("BENCH_EXPOSED_USERS", "1000000").replace("_", ""))
DAYS = 14
REFRESHES = 3
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
            yield "$feature_flag_called", user, {"$feature_flag": FLAG, "$feature_flag_response": other}, seen + timedelta(minutes=5)
        if rng.random() < (0.10 if variant == "control" else 0.11):
            yield "purchase", user, {"value": 20}, seen + timedelta(minutes=rng.randrange(1, 90))
        if rng.random() < 0.3:
            yield "add_to_cart", user, {}, seen + timedelta(minutes=1)
        yield "screen_view", f"user-{rng.randrange(USERS)}", {"screen": "home"}, start + timedelta(seconds=rng.random() * span)


def load(url: str, start: datetime) -> dict[str, Any]:
    began = time.perf_counter()
    rng = random.Random(7)
    received = datetime.now(timezone.utc) - timedelta(minutes=10)
    n = 0
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy('COPY events (uuid, event_type, distinct_id, properties, "timestamp", received_at) FROM STDIN') as copy:
            for event_type, user, properties, ts in _rows(start, rng):
                copy.write_row((uuid.uuid4(), event_type, user, orjson.dumps(properties).decode(), ts, received))
                n += 1
        conn.execute("ANALYZE events")
        variants = [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}]
        conn.execute(
            "INSERT INTO feature_flags (key, name, rollout_percentage, variants) VALUES (%s, %s, 100, %s)",
            (FLAG, FLAG, orjson.dumps(variants).decode()),
        )
        split = orjson.dumps([{"key": v["key"], "expected_percentage": v["rollout_percentage"]} for v in variants]).decode()
        for name, goal, secondary in (("Checkout v2", "purchase", ["add_to_cart"]), ("Checkout v2 (cart)", "add_to_cart", [])):
            conn.execute(
                "INSERT INTO experiments (name, flag_key, control_variant, goal_event, secondary_events, variants, start_at, end_at)"
                " VALUES (%s, %s, 'control', %s, %s, %s, %s, %s)",
                (name, FLAG, goal, orjson.dumps(secondary).decode(), split, start, start + timedelta(days=DAYS)),
            )
    return {"events": n, "seconds": round(time.perf_counter() - began, 1)}


def main() -> int:
    from dagster import AssetSelection, materialize

    from ingest_api.settings import Settings
    from orchestration.dbt import dbt_models, dbt_resource
    from orchestration.experiments import EXPERIMENT_DBT_MODELS, experiment_results
    from orchestration.resources import EventtrackResource, dbt_connection_env
    from orchestration.runner import prepare_dbt_manifest

    prepare_dbt_manifest()
    out: dict[str, Any] = {"machine": _machine(), "exposed_users": USERS, "target_seconds": TARGET_SECONDS}
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        os.environ.update(dbt_connection_env(url))
        out["postgres"] = _pg_info(url)
        resources = {"dbt": dbt_resource(), "eventtrack": EventtrackResource.from_settings(Settings(database_url=url))}
        start = (datetime.now(timezone.utc) - timedelta(days=DAYS, hours=1)).replace(microsecond=0)
        log(f"loading {USERS:,} exposed users with COPY")
        out["load"] = load(url, start)
        log(f"  {out['load']['events']:,} events in {out['load']['seconds']} s")

        log("staging views (dbt_models, not timed)")
        assert materialize([dbt_models], resources=resources, run_config=QUIET, raise_on_error=False).success

        selection = AssetSelection.assets(*EXPERIMENT_DBT_MODELS, experiment_results)
        runs = []
        for i in range(REFRESHES):
            began = time.perf_counter()
            result = materialize([dbt_models, experiment_results], selection=selection, resources=resources, run_config=QUIET, raise_on_error=False)
            seconds = time.perf_counter() - began
            if not result.success:
                raise RuntimeError("experiment refresh failed")
            runs.append({"seconds": round(seconds, 3), "dbt_model_seconds": _dbt_durations(result)})
            log(f"refresh {i + 1}: {seconds:.2f} s {runs[-1]['dbt_model_seconds']}")
        out["refreshes"] = runs
        out["median_seconds"] = sorted(r["seconds"] for r in runs)[len(runs) // 2]

        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT r.experiment_id, variant, exposures, conversions, multi_exposure_users, p_value, srm_p_value"
                " FROM analytics.experiment_results r ORDER BY 1, 2"
            ).fetchall()
            (direct,) = conn.execute(
                """SELECT count(*) FROM (
                       SELECT distinct_id FROM events WHERE event_type = '$feature_flag_called'
                       GROUP BY distinct_id HAVING count(DISTINCT properties->>'$feature_flag_response') = 1) s"""
            ).fetchone()
        out["results"] = [dict(zip(("experiment_id", "variant", "exposures", "conversions", "multi_exposure_users", "p_value", "srm_p_value"), r)) for r in rows]
        exposed = sum(r[2] for r in rows if r[0] == rows[0][0])
        if exposed != direct:
            raise RuntimeError(f"experiment_results counts {exposed} single-variant exposed users, a direct count gives {direct}")
        out["exposures_checked"] = exposed

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(out, indent=2, default=str) + "\n")
    verdict = "OK" if out["median_seconds"] < TARGET_SECONDS else "OVER TARGET"
    print(f"\nexperiment results refresh, {exposed:,} exposed users: median {out['median_seconds']:.2f} s ({verdict}, target < {TARGET_SECONDS:.0f} s)")
    print(f"results: {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
