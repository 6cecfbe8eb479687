"""`make bench-churn`: the weekly churn run for 1M users × 60 days of daily activity.

Against a fresh throwaway embedded Postgres:

1. the dbt project built on an empty events table (not timed), which creates every table the churn
   run reads or writes;
2. analytics_intermediate.int_user_activity_daily filled by one INSERT ... SELECT in Postgres with
   BENCH_CHURN_USERS users (default 1,000,000) over BENCH_CHURN_DAYS days (default 60), the planted
   behaviour of tests/integration/test_churn_pipeline.py: a daily activity probability per user in
   [0.25, 0.75], half of the users with a stop day before which it falls linearly over 21 days (not
   timed: it stands for the daily activity the job builds from the events; that build is not measured);
3. timed, through Dagster as the weekly `churn_scores` job runs them: the churn features at every
   weekly cut-off (dbt, `fct_user_churn_features` with its tests), then the asset
   `analytics/user_churn_scores` (read the sampled rows, train, validate, score every active user with
   their top contributing features, write the scores).

Target: the two timed steps together under 5 minutes. Results: bench/results/churn.json and stdout.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import psycopg

from bench.harness import host_info, run_benchmark
from bench.run_ingest import throwaway_postgres
from bench.run_pipeline import QUIET, RESULTS_DIR
from eventtrack.migrate import migrate

RESULTS_FILE = RESULTS_DIR / "churn.json"
TARGET_SECONDS = 300.0
USERS = int(os.environ.get("BENCH_CHURN_USERS", "1000000").replace("_", ""))
DAYS = int(os.environ.get("BENCH_CHURN_DAYS", "60"))

DAILY_ACTIVITY = """
WITH users AS (
    SELECT u, 0.25 + 0.5 * random() AS rate,
           CASE WHEN random() < 0.5 THEN (random() * (%(days)s + 20))::int END AS stop_day
    FROM generate_series(1, %(users)s) AS u
),
days AS (
    SELECT users.u, day,
           CASE WHEN stop_day IS NULL THEN rate
                WHEN day >= stop_day THEN 0
                ELSE rate * least(1.0, (stop_day - day) / 21.0) END AS p,
           1 + (random() < 0.33)::int AS sessions
    FROM users CROSS JOIN generate_series(0, %(days)s - 1) AS day
),
active AS (
    SELECT u, day, sessions, sessions * (2 + floor(random() * 3))::int AS events FROM days WHERE random() < p
)
INSERT INTO analytics_intermediate.int_user_activity_daily
SELECT 'user-' || u, (current_date - %(days)s + day)::date, events, sessions, sessions * random() * 600,
       least(events, 1 + floor(random() * 4))::int, events / 2, events / 4, events / 8, 0, 0,
       (ARRAY['1.0', '1.1', '2.0'])[1 + u %% 3], (ARRAY['ios', 'android'])[1 + u %% 2]
FROM active
"""


def log(message: str) -> None:
    print(f"[bench-churn {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    from dagster import AssetKey, materialize

    from eventtrack.settings import Settings
    from orchestration.churn import user_churn_scores
    from orchestration.dbt import churn_feature_models, dbt_models, dbt_resource
    from orchestration.resources import EventtrackResource, dbt_connection_env
    from orchestration.runner import build_dbt_views, prepare_dbt_manifest

    prepare_dbt_manifest()
    out: dict[str, Any] = {"machine": host_info(), "users": USERS, "days": DAYS, "target_seconds": TARGET_SECONDS}
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        os.environ.update(dbt_connection_env(url))
        settings = Settings(database_url=url)
        resources = {"dbt": dbt_resource(), "eventtrack": EventtrackResource.from_settings(settings)}
        log("dbt project on empty events (not timed)")
        build_dbt_views(settings)
        assert materialize([dbt_models], resources=resources, run_config=QUIET).success
        assert materialize([churn_feature_models], resources=resources, run_config=QUIET).success

        log(f"daily activity of {USERS:,} users over {DAYS} days (not timed)")
        began = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE analytics_intermediate.int_user_activity_daily")
            conn.execute(DAILY_ACTIVITY, {"users": USERS, "days": DAYS})
            conn.execute(
                "INSERT INTO analytics_intermediate.int_churn_top_event_types VALUES"
                " (1, 'screen_view', 0), (2, 'app_open', 0), (3, 'search', 0), (4, 'purchase', 0), (5, 'share', 0)"
            )
            conn.execute("VACUUM ANALYZE analytics_intermediate.int_user_activity_daily")
            (daily_rows,) = conn.execute(
                "SELECT count(*) FROM analytics_intermediate.int_user_activity_daily"
            ).fetchone()
        out["daily_rows"] = daily_rows
        log(f"  {daily_rows:,} user-days in {time.perf_counter() - began:.0f} s")

        log("features at every weekly cut-off (dbt build of fct_user_churn_features, timed)")
        began = time.perf_counter()
        result = materialize(
            [churn_feature_models],
            selection=[AssetKey(["analytics", "fct_user_churn_features"])],
            resources=resources,
            run_config=QUIET,
        )
        out["features_seconds"] = round(time.perf_counter() - began, 1)
        assert result.success
        with psycopg.connect(url, autocommit=True) as conn:
            out["feature_rows"] = dict(
                (str(c), n)
                for c, n in conn.execute(
                    "SELECT cutoff_date, count(*) FROM analytics.fct_user_churn_features GROUP BY 1 ORDER BY 1"
                )
            )
        log(f"  {out['features_seconds']} s: rows per cut-off {out['feature_rows']}")

        log("train, validate, score (the asset analytics/user_churn_scores, timed)")
        began = time.perf_counter()
        result = materialize([user_churn_scores], resources=resources, run_config=QUIET)
        out["model_seconds"] = round(time.perf_counter() - began, 1)
        assert result.success
        (materialization,) = result.asset_materializations_for_node("analytics__user_churn_scores")
        out["model"] = {k: v.value for k, v in materialization.metadata.items() if k != "calibration"}
        log(f"  {out['model_seconds']} s: {out['model']}")
    out["weekly_run_seconds"] = round(out["features_seconds"] + out["model_seconds"], 1)
    out["target_met"] = out["weekly_run_seconds"] < TARGET_SECONDS
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(out, indent=2, default=str) + "\n")
    log(f"weekly run {out['weekly_run_seconds']} s (target {TARGET_SECONDS:.0f} s): {out['target_met']}")
    return 0


if __name__ == "__main__":
    run_benchmark(main, "Postgres")
