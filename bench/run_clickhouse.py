"""`make bench-clickhouse`: the analytical queries on Postgres and on ClickHouse (chDB), then ClickHouse alone at 100M.

1. A fresh throwaway embedded Postgres, `migrate`, then BENCH_CH_ROWS (default 10,000,000) events of
   bench/run_pipeline.py's generator over 30 days, with BENCH_CH_USERS (default 1,000,000) users and
   50 event types (the pipeline bench's five types, weighted as there, plus 45 others: the funnel's
   app_open, add_to_cart and purchase are 4% of the events each); VACUUM (ANALYZE).
2. ClickHouse: the embedded engine (chDB) in a temporary data directory, loaded from that Postgres by
   the real loader (eventtrack.clickhouse.load_arrivals, as the Dagster asset runs it): the load rate.
3. Each query BENCH_CH_RUNS times (default 5) after one warm-up, median wall time, on both engines,
   with the SQL the endpoints run (eventtrack/analytics): the 3-step funnel app_open, add_to_cart,
   purchase over the 30 days with a 24h window; a breakdown by a property filtered by another (event
   counts per event type and `screen`, for `value>=90`), then the same with `screen` and `value`
   promoted on both (`eventtrack promote-property`: Postgres's expression indexes, ClickHouse's
   materialized columns). The answers are compared (they must be equal).
   Weekly retention cohorts (any event returning), the marts' triangle computed from the raw events.
4. ClickHouse alone: BENCH_CH_BIG_ROWS (default 100,000,000) events generated inside ClickHouse
   (INSERT ... SELECT FROM numbers(): the same distributions), the background merges let finish (at most
   5 minutes), and the 3-step funnel's median.

Targets (exit status 1 when one is missed): each query at least 5x faster on ClickHouse at 10M; the
funnel over 100M events under 1.5 s (median); the load at least 200,000 events/s.
Results: bench/results/clickhouse.json, and a summary on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa

from bench.run_ingest import throwaway_postgres
from bench.run_pipeline import (
    EVENT_TYPES,
    HISTORY_DAYS,
    RESULTS_DIR,
    _env_int,
    _git_commit,
    _machine,
    _pg_info,
    load_history,
)
from eventtrack import clickhouse
from eventtrack.analytics.funnels import (
    clickhouse_funnel_params,
    clickhouse_funnel_sql,
    funnel_params,
    funnel_sql,
    shape_results,
)
from eventtrack.analytics.retention import clickhouse_retention_sql, retention_rows
from eventtrack.analytics.segments import (
    clickhouse_breakdown,
    clickhouse_filters_sql,
    filters_sql,
    parse_breakdown,
    parse_filters,
)
from eventtrack.migrate import migrate
from ingest_api.promote import promote_property

ROWS = _env_int("BENCH_CH_ROWS", 10_000_000)
BIG_ROWS = _env_int("BENCH_CH_BIG_ROWS", 100_000_000)
USERS = _env_int("BENCH_CH_USERS", 1_000_000)
RUNS = _env_int("BENCH_CH_RUNS", 5)
# 50 types: the pipeline bench's weighted list three times over, and 45 others once each.
EVENT_TYPES_50 = EVENT_TYPES * 3 + tuple(f"event_{i:02d}" for i in range(45))
STEPS = ["app_open", "add_to_cart", "purchase"]
WINDOW = timedelta(hours=24)
BREAKDOWN = "properties.screen"
FILTER = "properties.value>=90"
PROMOTE = (("screen", "text"), ("value", "numeric"))
SPEEDUP_TARGET = 5.0
BIG_FUNNEL_TARGET_S = 1.5
LOAD_TARGET_PER_S = 200_000


def log(message: str) -> None:
    print(f"[bench-clickhouse {time.strftime('%H:%M:%S')}] {message}", flush=True)


def median_of(run: Callable[[], Any]) -> tuple[float, list[float], Any]:
    """(median seconds, every run's seconds, the last answer) of RUNS runs after a warm-up."""
    answer = run()
    seconds = []
    for _ in range(RUNS):
        start = time.perf_counter()
        answer = run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), [round(s, 3) for s in seconds], answer


@dataclass(frozen=True)
class Query:
    """One benchmarked query: each engine's runner takes (connection or client, database, start, end)
    and returns a comparable answer."""

    name: str
    postgres: Callable[..., Any]
    clickhouse: Callable[..., Any]


def pg_funnel(conn, _db, start, end):
    rows = conn.execute(sa.text(funnel_sql(len(STEPS), None, "")), funnel_params(STEPS, start, end, WINDOW)).all()
    return shape_results(STEPS, [tuple(r) for r in rows], False)


def ch_funnel(client, db, start, end, promoted=frozenset()):
    sql = clickhouse_funnel_sql(db, len(STEPS), None, "")  # no property in it: `promoted` changes nothing
    rows = client.query(sql, parameters=clickhouse_funnel_params(STEPS, start, end, WINDOW)).result_rows
    return shape_results(STEPS, [(bool(t), v, int(s), int(u), m) for t, v, s, u, m in rows], False)


def pg_breakdown(conn, _db, start, end):
    where, params = filters_sql(parse_filters([FILTER]))
    sql = (
        f"SELECT e.event_type, {parse_breakdown(BREAKDOWN)} AS value, count(*) FROM events e"
        f' WHERE e."timestamp" >= :start AND e."timestamp" < :end{where} GROUP BY 1, 2'
    )
    return sorted((t, v, int(n)) for t, v, n in conn.execute(sa.text(sql), {**params, "start": start, "end": end}))


def ch_breakdown(client, db, start, end, promoted=frozenset()):
    where, params = clickhouse_filters_sql(parse_filters([FILTER]), promoted=promoted)
    sql = (
        f"SELECT event_type, {clickhouse_breakdown(BREAKDOWN, promoted)} AS value, count() FROM {db}.events"
        " WHERE timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
        f"{where} GROUP BY event_type, value"
    )
    rows = client.query(sql, parameters={**params, "start": start, "end": end}).result_rows
    return sorted((t, v, int(n)) for t, v, n in rows)


# Weekly retention, any event returning: the marts' triangle (dbt_project/macros/retention.sql). Postgres
# answers it from the marts, which dbt builds with this work over the raw events; this is that work, at query
# time, as ClickHouse does it (eventtrack/analytics/retention.py), both shaped by `retention_rows`.
_PG_RETENTION = """
WITH w AS (
    SELECT distinct_id, date_trunc('week', "timestamp" AT TIME ZONE 'UTC')::date AS p FROM events
    WHERE "timestamp" >= :start AND "timestamp" < :end GROUP BY 1, 2
), c AS (SELECT distinct_id, min(p) AS cohort FROM w GROUP BY 1)
SELECT c.cohort, w.p, count(*), w.p FROM w JOIN c USING (distinct_id) GROUP BY 1, 2
UNION ALL
SELECT cohort, DATE '1970-01-01', count(*), cohort FROM c GROUP BY 1
"""


def pg_retention(conn, _db, start, end):
    rows = conn.execute(sa.text(_PG_RETENTION), {"start": start, "end": end}).all()
    return retention_rows([tuple(r) for r in rows], "week", None)


def ch_retention(client, db, start, end, promoted=frozenset()):
    # Every event loaded, none erased: ClickHouse's part of the split is all of it (the events are in [start, end)).
    split = {"loaded": 2**63, "cutoff": start, "erased": [], "kept": []}
    rows = client.query(clickhouse_retention_sql(db, "week", None, ""), parameters=split).result_rows
    return retention_rows([tuple(r) for r in rows], "week", None)


QUERIES = [
    Query("funnel_3_steps", pg_funnel, ch_funnel),
    Query("retention_weekly", pg_retention, ch_retention),
    Query("breakdown_screen_filter_value", pg_breakdown, ch_breakdown),
]

# The generator of bench/run_pipeline.py in ClickHouse's SQL (same distributions): users skewed by the
# square of a uniform draw, event types uniform over EVENT_TYPES_50, `screen` and `value` as there (the
# text of `value` with its two decimals, as Postgres's numeric prints it), times spread evenly.
_GENERATE = """
INSERT INTO {db}.events (uuid, event_type, distinct_id, properties, property_texts_json, device_id, session_id,
                         app_version, os_name, os_version, timestamp, client_timestamp, sent_at, received_at,
                         ingest_seq)
SELECT generateUUIDv4(number) AS uuid,
       {types:Array(String)}[1 + (cityHash64(number, 1) % length({types:Array(String)}))] AS event_type,
       concat('user-', toString(u)) AS distinct_id,
       concat('{"value": ', value, ', "screen": "', screen, '"}') AS properties,
       concat('{"value":"', value, '","screen":"', screen, '"}') AS property_texts_json,
       concat('device-', toString(u), '-', if(c < 0.85, '0', '1')) AS device_id,
       if(c < 0.7, lower(hex(MD5(concat(toString(u), '/', toString(intDiv(toUnixTimestamp(ts), 1800)))))), NULL),
       ['3.12.0', '3.13.1', '3.14.0', '3.14.2', '4.0.0'][1 + (u * 7) % 5] AS app_version,
       if(u % 20 < 11, 'iOS', 'Android') AS os_name,
       if(u % 20 < 11, ['16.7', '17.4', '17.5.1'][1 + u % 3], ['13', '14'][1 + u % 2]) AS os_version,
       ts AS timestamp,
       ts - toIntervalSecond(2) AS client_timestamp,
       ts + toIntervalSecond(5) AS sent_at,
       ts + toIntervalSecond(1) AS received_at,
       number + 1 AS ingest_seq
FROM (
    SELECT number,
           toUInt64(floor({users:UInt64} * pow(randCanonical(2), 2))) AS u,
           randCanonical(3) AS b,
           randCanonical(4) AS c,
           ['home', 'search', 'product', 'cart', 'checkout', 'settings'][1 + toUInt8(floor(b * 6)) % 6] AS screen,
           toUInt32(round(b * 10000)) AS cents,
           concat(toString(intDiv(cents, 100)), '.', leftPad(toString(cents % 100), 2, '0')) AS value,
           addMicroseconds({t0:DateTime64(6, 'UTC')},
                           toInt64((number + randCanonical(5)) * {span_us:Float64} / {n:UInt64})) AS ts
    FROM numbers({n:UInt64})
)
"""


def generate_in_clickhouse(client, db: str, rows: int, start: datetime, end: datetime) -> float:
    """`rows` events over [start, end) inserted by ClickHouse itself. Returns seconds."""
    began = time.perf_counter()
    span_us = (end - start) / timedelta(microseconds=1)
    client.command(
        _GENERATE.replace("{db}", db),
        parameters={
            "types": list(EVENT_TYPES_50),
            "users": USERS,
            "t0": start,
            "span_us": span_us,
            "n": rows,
        },
        settings={"max_insert_threads": 2},
    )
    return time.perf_counter() - began


def explain_indexes(client, db: str, start: datetime, end: datetime) -> list[str]:
    """The funnel's EXPLAIN indexes=1 (parts and granules each key selects): what a profile starts from
    (chDB keeps no system.query_log)."""
    sql = "EXPLAIN indexes = 1 " + clickhouse_funnel_sql(db, len(STEPS), None, "")
    rows = client.query(sql, parameters=clickhouse_funnel_params(STEPS, start, end, WINDOW)).result_rows
    wanted = ("Type:", "Keys:", "Parts:", "Granules:")
    return [line.strip() for (line,) in rows if any(w in line for w in wanted) and len(line) < 200]


def settle_merges(client) -> float:
    """Waits (at most 5 minutes) for the background merges a large insert starts: queries are timed on
    the table as it stands between loads, not while it is being rewritten. Returns the seconds waited."""
    began = time.perf_counter()
    log("waiting for the background merges")
    while time.perf_counter() - began < 300 and client.query("SELECT count() FROM system.merges").result_rows[0][0]:
        time.sleep(2)
    return round(time.perf_counter() - began, 1)


def active_parts(client, db: str) -> int:
    return client.query(
        "SELECT count() FROM system.parts WHERE database = {d:String} AND table = 'events' AND active",
        parameters={"d": db},
    ).result_rows[0][0]


def main() -> int:
    started = datetime.now(UTC)
    machine = _machine()
    end = started.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=HISTORY_DAYS)
    data_dir = tempfile.mkdtemp(prefix="bench-chdb-")
    results: dict[str, Any] = {
        "timestamp": started.isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "machine": machine,
        "runs": RUNS,
        "users": USERS,
        "event_types": len(set(EVENT_TYPES_50)),
    }
    missed: list[str] = []
    try:
        with throwaway_postgres() as pg:
            url = pg.url()
            migrate(url, 90, 7)
            log(f"loading {ROWS:,} events into Postgres, {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC")
            # received_at = timestamp + 1 s, capped at `end`: every row is settled for the loader.
            results["postgres_load_seconds"] = round(load_history(url, ROWS, start, end, end, USERS, EVENT_TYPES_50), 1)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE) events")
                results["rows"] = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            results["postgres"] = _pg_info(url)

            target = clickhouse.Target.parse(f"chdb://{data_dir}")
            client = clickhouse.connect(target)
            log(f"loading ClickHouse from Postgres (load_arrivals) into {data_dir}")
            with psycopg.connect(url, autocommit=True) as conn:
                began = time.perf_counter()
                loaded = clickhouse.load_arrivals(conn, client, target, timedelta(0))
                load_s = time.perf_counter() - began
            in_ch = client.query(f"SELECT count() FROM {target.database}.events").result_rows[0][0]
            rate = loaded.rows / load_s
            results["clickhouse_load"] = {"rows": loaded.rows, "seconds": round(load_s, 1), "events_per_s": round(rate)}
            log(f"  {loaded.rows:,} rows in {load_s:.1f} s: {rate:,.0f} events/s ({in_ch:,} in ClickHouse)")
            if in_ch != results["rows"]:
                missed.append(f"ClickHouse holds {in_ch} rows, Postgres {results['rows']}")
            if rate < LOAD_TARGET_PER_S:
                missed.append(f"load {rate:,.0f} events/s < {LOAD_TARGET_PER_S:,}")

            results["clickhouse_load"]["merge_wait_seconds"] = settle_merges(client)
            results["clickhouse_load"]["active_parts"] = active_parts(client, target.database)
            engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
            results["queries"] = {}

            def compare(name: str, query: Query, promoted: frozenset[str]) -> None:
                log(f"{name} ...")
                pg_s, pg_runs, pg_answer = median_of(lambda: query.postgres(conn, None, start, end))
                ch_s, ch_runs, ch_answer = median_of(
                    lambda: query.clickhouse(client, target.database, start, end, promoted)
                )
                speedup = pg_s / ch_s
                results["queries"][name] = {
                    "postgres_median_s": round(pg_s, 3),
                    "postgres_runs_s": pg_runs,
                    "clickhouse_median_s": round(ch_s, 3),
                    "clickhouse_runs_s": ch_runs,
                    "speedup": round(speedup, 1),
                    "answers_equal": pg_answer == ch_answer,
                    "answer": ch_answer,
                }
                log(f"  Postgres {pg_s:.3f} s, ClickHouse {ch_s:.3f} s: {speedup:.1f}x")
                if pg_answer != ch_answer:
                    missed.append(f"{name}: the engines' answers differ")
                if speedup < SPEEDUP_TARGET:
                    missed.append(f"{name}: {speedup:.1f}x < {SPEEDUP_TARGET}x")

            with engine.connect() as conn:
                for query in QUERIES:
                    compare(query.name, query, frozenset())
                # The properties of the breakdown promoted (`eventtrack promote-property`), as an install that
                # breaks down by them would: Postgres's expression indexes, ClickHouse's materialized columns.
                conn.commit()  # CREATE INDEX CONCURRENTLY waits for every open transaction, this one's too
                began = time.perf_counter()
                for key, kind in PROMOTE:
                    promote_property(url, key, kind)
                conn.execute(sa.text("ANALYZE events"))
                conn.commit()
                results["postgres_promote_seconds"] = round(time.perf_counter() - began, 1)
                with psycopg.connect(url, autocommit=True) as pg_conn:
                    began = time.perf_counter()
                    clickhouse.ensure_promoted_columns(pg_conn, client, target, wait=True)
                    results["clickhouse_promote_seconds"] = round(time.perf_counter() - began, 1)
                log(
                    f"promoted {', '.join(key for key, _ in PROMOTE)}: Postgres {results['postgres_promote_seconds']} s,"
                    f" ClickHouse {results['clickhouse_promote_seconds']} s"
                )
                breakdown = next(q for q in QUERIES if q.name.startswith("breakdown"))
                compare(breakdown.name + "_promoted", breakdown, clickhouse.promoted_columns(client, target))
            engine.dispose()
            client.command(f"DROP TABLE {target.database}.events SYNC")  # room for the 100M

        big = clickhouse.Target(url=target.url, database="bench_big")
        client = clickhouse.connect(big)
        log(f"generating {BIG_ROWS:,} events inside ClickHouse")
        results["big_rows"] = BIG_ROWS
        results["big_generate_seconds"] = round(generate_in_clickhouse(client, big.database, BIG_ROWS, start, end), 1)
        log(f"  in {results['big_generate_seconds']} s")
        results["big_merge_wait_seconds"] = settle_merges(client)
        big_s, big_runs, big_answer = median_of(lambda: ch_funnel(client, big.database, start, end))
        results["big_funnel"] = {
            "median_s": round(big_s, 3),
            "runs_s": big_runs,
            "answer": big_answer,
            "explain_indexes": explain_indexes(client, big.database, start, end),
            "active_parts": active_parts(client, big.database),
        }
        log(f"  3-step funnel over {BIG_ROWS:,} events: median {big_s:.3f} s {big_runs}")
        if big_s >= BIG_FUNNEL_TARGET_S:
            missed.append(f"100M funnel median {big_s:.3f} s >= {BIG_FUNNEL_TARGET_S} s")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    results["targets"] = {
        "speedup": SPEEDUP_TARGET,
        "big_funnel_s": BIG_FUNNEL_TARGET_S,
        "load_events_per_s": LOAD_TARGET_PER_S,
    }
    results["missed"] = missed
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "clickhouse.json").write_text(json.dumps(results, indent=2, default=str))
    print()
    print(f"{results['rows']:,} events, {USERS:,} users, {results['event_types']} event types, {HISTORY_DAYS} days")
    print(f"load Postgres -> ClickHouse: {results['clickhouse_load']['events_per_s']:,} events/s")
    for name, q in results["queries"].items():
        print(
            f"{name:32} Postgres {q['postgres_median_s']:7.3f} s  ClickHouse {q['clickhouse_median_s']:7.3f} s"
            f"  {q['speedup']:6.1f}x  equal answers: {q['answers_equal']}"
        )
    print(f"funnel over {BIG_ROWS:,} events (ClickHouse): median {results['big_funnel']['median_s']:.3f} s")
    print("targets: " + ("all MET" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    raise SystemExit(main())
