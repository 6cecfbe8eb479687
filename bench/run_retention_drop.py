"""`make bench-retention`: retention's partition drop against a row DELETE on a realistic day.

Retention removes a whole UTC day of events by dropping its partition (orchestration/maintenance.py
`drop_expired_event_partitions`, what the daily maintenance job runs). The alternative a row store without
partitions would need is `DELETE ... WHERE timestamp < cutoff` and then the VACUUM that makes the space
reusable (and keeps the indexes from bloating). This measures both on the same day:

1. A fresh throwaway embedded Postgres, `migrate` (the production schema: daily partitions and their indexes).
2. The day to expire gets BENCH_RETENTION_ROWS events (default 1,000,000; bench/run_pipeline.py's generator),
   the day after it as many (a neighbour that stays), then ANALYZE.
3. Timed: `drop_expired_event_partitions` with the cutoff just after that day (it counts the day's rows, then
   DROPs the partition).
4. The day made again and loaded again the same way; timed: `DELETE FROM events WHERE timestamp < cutoff`
   (Postgres prunes it to that day's partition), then `VACUUM` of that partition.

Target: DELETE + VACUUM at least 100x the drop's wall time. Exits 1 when missed.
Results: bench/results/retention_drop.json.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import psycopg

from bench.run_ingest import throwaway_postgres
from bench.run_pipeline import RESULTS_DIR, _env_int, _git_commit, _machine, load_history, log
from eventtrack.migrate import migrate
from eventtrack.partitions import partition_name
from orchestration.maintenance import drop_expired_event_partitions

ROWS = _env_int("BENCH_RETENTION_ROWS", 1_000_000)
RETENTION_DAYS = 30
TARGET_RATIO = 100.0


def main() -> int:
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # The expiring day is the one just before the cutoff of RETENTION_DAYS: dropping it is the next run's work.
    day = midnight - timedelta(days=RETENTION_DAYS + 1)
    results: dict = {"timestamp": now.isoformat(timespec="seconds"), "git_commit": _git_commit(), "rows": ROWS}
    results["machine"] = _machine()
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        with psycopg.connect(url, autocommit=True) as conn:
            # The older (empty) days go first, so the timed drop is that of the one loaded day.
            drop_expired_event_partitions(conn, day + timedelta(days=RETENTION_DAYS), RETENTION_DAYS)
            log(f"loading {ROWS:,} events into {day:%Y-%m-%d} and as many into the day after")
            load_history(url, ROWS, day + timedelta(days=1), day + timedelta(days=2), now)
            load_history(url, ROWS, day, day + timedelta(days=1), now)
            # The drop reports the rows it removes (an exact count: a scan of the day). Timed alone first, which
            # also warms the cache for the drop's own count, as for the DELETE's scan below.
            began = time.perf_counter()
            conn.execute(f'SELECT count(*) FROM "{partition_name(day.date())}"')
            count_s = time.perf_counter() - began
            began = time.perf_counter()
            dropped = drop_expired_event_partitions(conn, now, RETENTION_DAYS)
            drop_s = time.perf_counter() - began
            assert dropped == {partition_name(day.date()): ROWS}, dropped
            log(f"drop: {drop_s:.3f} s for {ROWS:,} rows")

            conn.execute("SELECT ensure_event_partitions(%s, %s)", (day.date(), day.date()))
            load_history(url, ROWS, day, day + timedelta(days=1), now)
            conn.execute(f'SELECT count(*) FROM "{partition_name(day.date())}"')  # the same warm cache
            cutoff = day + timedelta(days=1)
            began = time.perf_counter()
            deleted = conn.execute('DELETE FROM events WHERE "timestamp" < %s', (cutoff,)).rowcount
            delete_s = time.perf_counter() - began
            conn.execute(f'VACUUM "{partition_name(day.date())}"')
            both_s = time.perf_counter() - began
            assert deleted == ROWS, deleted
            log(f"DELETE {delete_s:.2f} s, with VACUUM {both_s:.2f} s")
    ratio = both_s / drop_s
    results.update(
        drop_seconds=round(drop_s, 4),
        count_seconds=round(count_s, 4),
        ratio_without_count=round(both_s / max(drop_s - count_s, 1e-6), 1),
        delete_seconds=round(delete_s, 3),
        delete_and_vacuum_seconds=round(both_s, 3),
        ratio=round(ratio, 1),
        target_ratio=TARGET_RATIO,
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "retention_drop.json").write_text(json.dumps(results, indent=2, default=str))
    print()
    print(f"a day of {ROWS:,} events: partition drop {drop_s:.3f} s (of which the row count {count_s:.3f} s);")
    print(f"DELETE {delete_s:.2f} s + VACUUM = {both_s:.2f} s")
    print(f"DELETE + VACUUM / the DROP alone = {results['ratio_without_count']:.0f}x")
    print(
        f"DELETE + VACUUM / drop = {ratio:.0f}x (target >= {TARGET_RATIO:.0f}x): {'met' if ratio >= TARGET_RATIO else 'MISSED'}"
    )
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
