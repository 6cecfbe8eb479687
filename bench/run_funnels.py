"""`make bench-analytics`: the funnels endpoint on 10M events (BENCH_FUNNEL_ROWS).

1. A fresh throwaway embedded Postgres, `migrate`, then the synthetic 30-day
   history of bench/run_pipeline.py (same generator: ~2000 users, weighted
   event types of which app_open, add_to_cart and purchase are 10% each),
   then ANALYZE.
2. The API (the real app under uvicorn, in a thread) and an admin key.
3. Each case is requested BENCH_FUNNEL_RUNS times (default 5) over HTTP after
   one warm-up request; the median wall time of the request is reported:
   the 3-step funnel `app_open,add_to_cart,purchase` over the 30 days with a 24h
   window, with a breakdown by os_name, with property filters (unselective
   `screen=checkout`, selective `value>=99`) before and after `promote-property`.

BENCH_DATABASE_URL: time the requests on a database this loader filled before
(the load of 10M rows takes ~20 minutes on 2 busy cores) instead of a fresh one.

Target: the plain 3-step funnel under 2 s (median). Results: bench/results/funnels.json.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import uvicorn

from bench.run_ingest import throwaway_postgres
from bench.run_pipeline import HISTORY_DAYS, RESULTS_DIR, _env_int, _git_commit, _machine, _pg_info, load_history
from eventtrack.migrate import migrate
from eventtrack.settings import Settings
from ingest_api.admin.key_store import create_admin_key
from ingest_api.app import create_app
from ingest_api.promote import index_name, promote_property

ROWS = _env_int("BENCH_FUNNEL_ROWS", 10_000_000)
RUNS = _env_int("BENCH_FUNNEL_RUNS", 5)
TARGET_S = 2.0
FUNNEL = "/api/v1/analytics/admin/funnels/"
# screen=checkout matches 1 event in 6 (an index does not pay off); value>=99 about 1 in 100.
FILTERS = {"screen": "properties.screen=checkout", "value": "properties.value>=99"}
PROMOTED = (("screen", "text"), ("value", "numeric"))


def log(message: str) -> None:
    print(f"[bench-analytics {time.strftime('%H:%M:%S')}] {message}", flush=True)


def serve(settings: Settings, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    return server


def timed(client: httpx.Client, path: str, params: dict[str, Any]) -> dict[str, Any]:
    client.get(path, params=params).raise_for_status()  # warm-up: plans, caches
    seconds, body = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        response = client.get(path, params=params)
        seconds.append(time.perf_counter() - start)
        response.raise_for_status()
        body = response.json()
    return {
        "params": params,
        "median_s": round(statistics.median(seconds), 3),
        "runs_s": [round(s, 3) for s in seconds],
        "body": body,
    }


@contextmanager
def loaded_database(started: datetime) -> Iterator[tuple[str, datetime, dict[str, float]]]:
    """(url, end of the history, timings): a fresh throwaway Postgres loaded here, or BENCH_DATABASE_URL
    (a database loaded before by this same loader, e.g. to time the queries again without a 20-minute load)."""
    existing = os.environ.get("BENCH_DATABASE_URL")
    if existing:
        with psycopg.connect(existing, autocommit=True) as conn:
            newest = conn.execute('SELECT max("timestamp") FROM events').fetchone()[0]
            for prop, kind in PROMOTED:  # a previous run's promotions
                conn.execute(f'DROP INDEX IF EXISTS "{index_name(prop, kind)}"')
            conn.execute("DELETE FROM promoted_properties")
        yield (
            existing,
            newest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1),
            {"reused_database": True},
        )
        return
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        end = started.replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(days=HISTORY_DAYS)
        log(f"loading {ROWS:,} events {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC")
        load_s = load_history(url, ROWS, start, end, end)
        log(f"loaded in {load_s:.0f} s; VACUUM (ANALYZE) events")
        vacuum_start = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            # Sets the visibility map, as autovacuum does for partitions that stopped receiving
            # inserts: the funnel's first step is an index-only scan.
            conn.execute("VACUUM (ANALYZE) events")
        yield (
            url,
            end,
            {"load_seconds": round(load_s, 1), "vacuum_seconds": round(time.perf_counter() - vacuum_start, 1)},
        )


def main() -> int:
    started = datetime.now(UTC)
    machine = _machine()
    with loaded_database(started) as (url, end, load_info):
        start = end - timedelta(days=HISTORY_DAYS)
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        settings = Settings(database_url=url)
        _, key = create_admin_key(url, "bench")
        server = serve(settings, 18765)
        try:
            with httpx.Client(
                base_url="http://127.0.0.1:18765", timeout=600, headers={"Authorization": f"Bearer {key}"}
            ) as client:
                time.sleep(2)  # the admin key cache refreshes in the background
                base = {
                    "steps": "app_open,add_to_cart,purchase",
                    "window": "24h",
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                }
                cases: dict[str, Any] = {}
                filtered = {f"funnel_filter_{prop}": {**base, "filter": raw} for prop, raw in FILTERS.items()}
                for name, params in (
                    ("funnel_3_steps", base),
                    ("funnel_breakdown_os_name", {**base, "breakdown": "os_name"}),
                    *filtered.items(),
                ):
                    log(f"{name} ...")
                    cases[name] = timed(client, FUNNEL, params)
                    log(f"  median {cases[name]['median_s']:.3f} s {cases[name]['runs_s']}")
                promote_s = {}
                for prop, kind in PROMOTED:
                    promote_start = time.perf_counter()
                    promote_property(url, prop, kind)
                    promote_s[prop] = round(time.perf_counter() - promote_start, 1)
                    log(f"promote-property {prop} --type {kind}: {promote_s[prop]:.0f} s")
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("ANALYZE events")
                for name, params in filtered.items():
                    cases[name + "_promoted"] = timed(client, FUNNEL, params)
                    log(f"{name}_promoted: median {cases[name + '_promoted']['median_s']:.3f} s")
        finally:
            server.should_exit = True
        results = {
            "timestamp": started.isoformat(timespec="seconds"),
            "git_commit": _git_commit(),
            "machine": machine,
            "postgres": _pg_info(url),
            "rows": rows,
            **load_info,
            "promote_property_seconds": promote_s,
            "runs": RUNS,
            "target_s": TARGET_S,
            "met": cases["funnel_3_steps"]["median_s"] < TARGET_S,
            "cases": cases,
        }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "funnels.json").write_text(json.dumps(results, indent=2, default=str))
    print()
    for name, case in results["cases"].items():
        steps = [r["users"] for r in case["body"]["results"]]
        print(f"{name:34} median {case['median_s']:7.3f} s   users per step {steps}")
    print(
        f"3-step funnel over {HISTORY_DAYS} days on {rows:,} events: target < {TARGET_S} s: {'MET' if results['met'] else 'NOT MET'}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    raise SystemExit(main())
