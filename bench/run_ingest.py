"""`make bench`: the ingest benchmark.

One run, on this machine, against a throwaway embedded Postgres:

1. single capture: wrk POSTs one event per request (a fresh random uuid each)
   to the real service, and the same bodies to a bare Starlette endpoint that
   only parses the JSON (bench/bare_app.py). Both are served by uvicorn with the
   command line of `eventtrack api` (httptools, uvloop, same worker count).
   Target: the service answers >= 50% of the bare endpoint's requests/s, p99 < 50 ms.
2. batch capture: wrk POSTs 100 events per request (fresh uuids each) to the
   batch endpoint; compared with a raw COPY of rows of the same shape, straight
   into the same `events` table, from Python with psycopg (binary COPY, like
   the sink). Target: the service's events/s >= 60% of raw COPY rows/s.

Both servers run for the whole benchmark and the measurements are interleaved
in rounds (bare, service single, service batch, raw COPY; again): load from
outside the benchmark then hits both sides of a comparison alike, and the best
round of each side is the headline (every round is in the JSON and the summary).
Each measured load starts from empty tables and a checkpoint.

After every load the rows of `events` are counted: the table must have grown
by (200 answers) x (events per request), plus at most the requests still in
flight when wrk stopped (wrk does not count them, the server commits them).
Fewer rows means events were lost: the run fails (exit status 1).

Results: bench/results/latest.json (and a timestamped copy), plus a summary
on stdout. Knobs (environment): BENCH_WORKERS (uvicorn workers for both apps,
default 1), BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_DURATION (10 s),
BENCH_WARMUP (3 s), BENCH_ROUNDS (2), BENCH_BATCH_SIZE (100).
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from bench.harness import (
    RESULTS_DIR,
    ROOT,
    WORKERS,
    BenchFailure,
    CpuMeter,
    Server,
    count_events,
    cpu_delta,
    cpu_percent,
    cpu_us_per_event,
    env_int,
    log,
    machine_info,
    postmaster_pid,
    reset_tables,
    run_benchmark,
    serving,
    settled_count,
    throwaway_postgres,
)
from eventtrack.migrate import migrate
from ingest_api.sink import COLUMN_TYPES, EVENT_COLUMNS

BENCH_DIR = ROOT / "bench"
LUA_SCRIPT = BENCH_DIR / "post_template.lua"

CAPTURE_PATH = "/api/v1/analytics/capture/"
BATCH_PATH = "/api/v1/analytics/batch/"

# Targets from the issue.
SINGLE_MIN_RATIO = 0.50
SINGLE_MAX_P99_MS = 50.0
BATCH_MIN_RATIO = 0.60

CONNECTIONS = env_int("BENCH_CONNECTIONS", 64)
THREADS = env_int("BENCH_THREADS", 2)
DURATION = env_int("BENCH_DURATION", 10)
WARMUP = env_int("BENCH_WARMUP", 3)
BATCH_SIZE = env_int("BENCH_BATCH_SIZE", 100)
# Each comparison runs ROUNDS times, interleaved (bare, service, batch, COPY, bare, ...);
# the best round of each side is the headline: external load only ever slows a run down.
ROUNDS = env_int("BENCH_ROUNDS", 2)
# Raw COPY: rows per transaction (the order of the sink's groups under the batch
# load: up to 64 requests x 100 events, ~3,200 measured), and the most rows pre-built.
COPY_ROWS_PER_TXN = 10_000
COPY_MAX_ROWS = 600_000


# --------------------------------------------------------------------------- events


def _event_templates(now: datetime, count: int) -> list[dict[str, Any]]:
    """Events as a mobile SDK sends them; "__UUID__" is replaced per request by wrk."""
    screens = ["home", "search", "product", "cart", "checkout", "settings", "profile"]
    kinds = ["screen_view", "button_tap", "add_to_cart", "purchase", "app_open"]
    events = []
    for i in range(count):
        ts = now - timedelta(seconds=30 + i)
        events.append(
            {
                "uuid": "__UUID__",
                "event_type": kinds[i % len(kinds)],
                "distinct_id": f"user-{1000 + i % 37}",
                "timestamp": ts.isoformat().replace("+00:00", "Z"),
                "device_id": f"device-{(i * 7919) % 100000:05d}",
                "session_id": str(uuid.UUID(int=(i % 11) + 1)),
                "app_version": "3.14.2",
                "os_name": "iOS" if i % 2 else "Android",
                "os_version": "17.5.1" if i % 2 else "14",
                "properties": {
                    "screen": screens[i % len(screens)],
                    "button": "pay",
                    "cart_items": i % 5,
                    "cart_value": 19.99 + i,
                    "currency": "EUR",
                    "experiment": {"name": "new_checkout", "variant": "b" if i % 3 else "a"},
                    "tags": ["promo", "returning"],
                },
            }
        )
    return events


def write_templates(workdir: Path, now: datetime) -> tuple[Path, Path, list[dict[str, Any]]]:
    sent_at = now.isoformat().replace("+00:00", "Z")
    single = _event_templates(now, 1)[0] | {"sent_at": sent_at}
    batch_events = _event_templates(now, BATCH_SIZE)
    single_path = workdir / "single.json"
    batch_path = workdir / "batch.json"
    single_path.write_bytes(orjson.dumps(single))
    batch_path.write_bytes(orjson.dumps({"sent_at": sent_at, "events": batch_events}))
    return single_path, batch_path, batch_events


def _copy_rows(templates: list[dict[str, Any]], count: int, received_at: datetime) -> list[list[tuple]]:
    """Rows of the batch events' shape (fresh uuids), as the sink hands them to COPY, in chunks."""
    prepared = []
    for e in templates:
        ts = datetime.fromisoformat(e["timestamp"])
        prepared.append(
            (
                e["event_type"],
                e["distinct_id"],
                JsonbBytes(orjson.dumps(e["properties"])),
                e["device_id"],
                e["session_id"],
                e["app_version"],
                e["os_name"],
                e["os_version"],
                ts,  # corrected timestamp (sent_at == received_at: no shift)
                ts,
                received_at,
                received_at,
            )
        )
    chunks: list[list[tuple]] = []
    n = len(prepared)
    for start in range(0, count, COPY_ROWS_PER_TXN):
        chunks.append([(uuid.uuid4(), *prepared[i % n]) for i in range(start, min(count, start + COPY_ROWS_PER_TXN))])
    return chunks


# --------------------------------------------------------------------------- load


def run_wrk(url: str, template: Path, duration: int, seed: int) -> dict[str, Any]:
    command = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(template),
        str(seed),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise BenchFailure(f"wrk failed ({result.returncode}): {result.stderr.strip()}\n{result.stdout}")
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise BenchFailure(f"wrk printed no BENCH_JSON line:\n{result.stdout}\n{result.stderr}")
    stats = json.loads(line[len("BENCH_JSON ") :])
    stats["wrk_cpu_seconds"] = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 3)
    stats["wrk_output"] = [ln for ln in result.stdout.splitlines() if not ln.startswith("BENCH_JSON ")]
    return stats


def load(
    server: Server,
    path: str,
    template: Path,
    events_per_request: int,
    duration: int,
    database_url: str | None,
    meter: CpuMeter,
    label: str,
) -> dict[str, Any]:
    """One wrk run; with a database, checks that every 200 answer's events are in `events`."""
    seed = random.randrange(1, 2**31)
    before = settled_count(database_url) if database_url else None
    cpu0, t0 = meter.sample(), time.monotonic()
    stats = run_wrk(server.url + path, template, duration, seed)
    wall = time.monotonic() - t0
    cpu1 = meter.sample()
    seconds = stats["duration_us"] / 1e6
    errors = stats["errors"]
    ok = stats["requests"] - errors["status"]
    out: dict[str, Any] = {
        "label": label,
        "connections": CONNECTIONS,
        "threads": THREADS,
        "duration_s": round(seconds, 3),
        "responses": stats["requests"],
        "ok_responses": ok,
        "non_2xx_responses": errors["status"],
        "socket_errors": {k: errors[k] for k in ("connect", "read", "write", "timeout")},
        "requests_per_s": round(ok / seconds, 1),
        "events_per_s": round(ok * events_per_request / seconds, 1),
        "latency_ms": {k: round(v / 1000, 2) for k, v in stats["latency_us"].items()},
        "cpu_percent": cpu_percent(cpu0, cpu1, wall, wrk=stats["wrk_cpu_seconds"]),
        # CPU per event hardly depends on load from outside the benchmark, unlike throughput.
        "cpu_us_per_event": cpu_us_per_event(cpu0, cpu1, stats["requests"] * events_per_request),
        "wrk_output": stats["wrk_output"],
    }
    if database_url:
        after = settled_count(database_url)
        grown = after - before
        expected = ok * events_per_request
        unanswered = CONNECTIONS + errors["status"] + errors["timeout"] + errors["read"] + errors["write"]
        verification = {
            "rows_before": before,
            "rows_after": after,
            "rows_grown": grown,
            "expected_from_200_answers": expected,
            "extra_rows_from_requests_in_flight_at_stop": grown - expected,
            "max_extra_allowed": unanswered * events_per_request,
            "ok": expected <= grown <= expected + unanswered * events_per_request and grown % events_per_request == 0,
        }
        out["verification"] = verification
        log(
            f"{label}: {ok} answers 200 x {events_per_request} = {expected} events; "
            f"events grew by {grown} (+{grown - expected} from requests in flight when wrk stopped)"
        )
        if grown < expected:
            raise BenchFailure(
                f"EVENTS LOST in {label}: {ok} answers 200 x {events_per_request} = {expected} events, "
                f"but `events` grew by {grown} only ({expected - grown} missing)"
            )
        if not verification["ok"]:
            raise BenchFailure(f"row count check failed in {label}: {verification}")
    if errors["status"] or any(out["socket_errors"].values()):
        log(f"WARNING {label}: {errors['status']} non-2xx answers, socket errors {out['socket_errors']}")
    return out


class JsonbBytes(bytes):
    """Serialized JSON, copied as jsonb as it is (the raw COPY's properties)."""


class _JsonbBytesBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj  # jsonb binary format: version byte, then the text


def _register_jsonb_bytes(conn: psycopg.Connection) -> None:
    _JsonbBytesBinaryDumper.oid = conn.adapters.types["jsonb"].oid
    conn.adapters.register_dumper(JsonbBytes, _JsonbBytesBinaryDumper)


def raw_copy(url: str, chunks: list[list[tuple]], duration: int, meter: CpuMeter, label: str) -> dict[str, Any]:
    """COPY pre-built rows of the batch events' shape straight into `events` (binary: the cheapest way in)."""
    columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    reset_tables(url)
    copied = 0
    with psycopg.connect(url) as conn:
        _register_jsonb_bytes(conn)
        log(f"raw COPY into events, {COPY_ROWS_PER_TXN} rows per transaction, for up to {duration} s")
        cpu0, proc0 = meter.sample(), time.process_time()
        start = time.perf_counter()
        for chunk in chunks:
            with conn.transaction():
                with conn.cursor() as cur:
                    with cur.copy(f"COPY events ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(COLUMN_TYPES)
                        for row in chunk:
                            copy.write_row(row)
            copied += len(chunk)
            if time.perf_counter() - start >= duration:
                break
        elapsed = time.perf_counter() - start
        cpu1, proc1 = meter.sample(), time.process_time()
    counted = count_events(url)
    if counted != copied:
        raise BenchFailure(f"raw COPY: copied {copied} rows but `events` holds {counted}")
    if copied == COPY_MAX_ROWS:
        log(f"note: all {COPY_MAX_ROWS} pre-built rows copied in {elapsed:.1f} s")
    log(f"{label}: {copied} rows in {elapsed:.1f} s; `events` holds {counted}")
    return {
        "label": label,
        "rows": copied,
        "rows_per_transaction": COPY_ROWS_PER_TXN,
        "seconds": round(elapsed, 3),
        "rows_per_s": round(copied / elapsed, 1),
        "cpu_percent": cpu_percent(cpu0, cpu1, elapsed, python_client=proc1 - proc0),
        "cpu_us_per_event": {
            "postgres": round(1e6 * cpu_delta(cpu0["postgres"], cpu1["postgres"]) / copied, 1),
            "python_client": round(1e6 * (proc1 - proc0) / copied, 1),
        },
        "verification": {"rows_copied": copied, "rows_counted": counted, "ok": True},
    }


# --------------------------------------------------------------------------- report


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--",
                "ingest_api",
                "bench/run_ingest.py",
                "bench/bare_app.py",
                str(LUA_SCRIPT),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except OSError:
        return None


def _best(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return max(runs, key=lambda r: r[key])


def _summary(results: dict[str, Any]) -> str:
    s, b, m = results["single_capture"], results["batch_capture"], results["machine"]
    yes = lambda ok: "MET" if ok else "NOT MET"  # noqa: E731

    def lat(r: dict[str, Any]) -> str:
        return f"p50 {r['latency_ms']['p50']:>7.2f} ms   p99 {r['latency_ms']['p99']:>7.2f} ms"

    def cpu(r: dict[str, Any]) -> str:
        per_event = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_us_per_event"].items())
        return ", ".join(f"{k} {v:.0f}%" for k, v in r["cpu_percent"].items()) + f"; CPU us/event: {per_event}"

    lines = [
        "",
        f"Ingest benchmark ({results['timestamp']}; {m['cpus']} CPUs {m['cpu_model']}; load average at start "
        f"{m['loadavg_at_start'][0]:.2f}; uvicorn --workers {results['config']['workers']};"
        f" wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}s; {results['config']['rounds']} interleaved rounds, best round reported)",
        "",
        "Single capture: POST /api/v1/analytics/capture/, one event, fresh uuid per request",
    ]
    for i, (svc, bare) in enumerate(zip(s["service_rounds"], s["bare_rounds"]), 1):
        lines.append(f"  round {i}: service {svc['requests_per_s']:>8.1f} req/s  {lat(svc)}   [{cpu(svc)}]")
        lines.append(f"           bare    {bare['requests_per_s']:>8.1f} req/s  {lat(bare)}   [{cpu(bare)}]")
    lines += [
        f"  best:    service {s['service']['requests_per_s']:>8.1f} req/s  {lat(s['service'])}",
        f"           bare    {s['bare']['requests_per_s']:>8.1f} req/s  {lat(s['bare'])}",
        f"  service / bare = {s['ratio']:.1%} (target >= {SINGLE_MIN_RATIO:.0%}): {yes(s['ratio_met'])};"
        f"  p99 {s['service']['latency_ms']['p99']:.1f} ms (target < {SINGLE_MAX_P99_MS:.0f} ms): {yes(s['p99_met'])}",
        "",
        f"Batch capture: POST /api/v1/analytics/batch/, {BATCH_SIZE} events per request, fresh uuids",
    ]
    for i, (svc, raw) in enumerate(zip(b["service_rounds"], b["raw_copy_rounds"]), 1):
        lines.append(
            f"  round {i}: service  {svc['events_per_s']:>9.1f} events/s ({svc['requests_per_s']:.1f} req/s,"
            f" {lat(svc)})   [{cpu(svc)}]"
        )
        lines.append(
            f"           raw COPY {raw['rows_per_s']:>9.1f} rows/s   ({raw['rows']} rows in {raw['seconds']:.1f} s,"
            f" {COPY_ROWS_PER_TXN} per transaction)   [{cpu(raw)}]"
        )
    lines += [
        f"  best:    service  {b['service']['events_per_s']:>9.1f} events/s",
        f"           raw COPY {b['raw_copy']['rows_per_s']:>9.1f} rows/s",
        f"  service / raw COPY = {b['ratio']:.1%} (target >= {BATCH_MIN_RATIO:.0%}): {yes(b['ratio_met'])}",
        "",
        "[CPU in % of one core (the machine has "
        f"{m['cpus']}); 'others' is load from outside the benchmark, 'steal' is time the VM host took;"
        " CPU us/event: CPU time per event (per request for single capture), which load from outside hardly changes]",
        "Row checks: after every load `events` grew by (200 answers) x (events per request), plus the requests"
        " in flight when wrk stopped; nothing was lost.",
        f"Targets: {'ALL MET' if results['all_targets_met'] else 'NOT ALL MET'}",
    ]
    return "\n".join(lines)


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it: apt-get install wrk)", file=sys.stderr)
        return 2

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    bare_rounds: list[dict[str, Any]] = []
    single_rounds: list[dict[str, Any]] = []
    batch_rounds: list[dict[str, Any]] = []
    copy_rounds: list[dict[str, Any]] = []
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="etb-work-", dir="/tmp"))
        stack.callback(shutil.rmtree, workdir, True)
        pg = stack.enter_context(throwaway_postgres())
        url = pg.url()
        migrate(url, 90, 7)
        postmaster = postmaster_pid(pg.pgdata)
        machine = machine_info(url)
        single_tpl, batch_tpl, batch_events = write_templates(workdir, started)
        log(f"pre-building up to {COPY_MAX_ROWS} rows for the raw COPY")
        copy_chunks = _copy_rows(batch_events, COPY_MAX_ROWS, started)

        # Both servers stay up for the whole run (an idle one costs nothing), so the
        # measurements can be interleaved: external load then hits both sides alike.
        bare = stack.enter_context(serving("bare", "bench.bare_app:app", url, workdir))
        service = stack.enter_context(serving("service", "ingest_api.asgi:app", url, workdir))
        bare_meter = CpuMeter(bare.pgid, postmaster)
        service_meter = CpuMeter(service.pgid, postmaster)
        copy_meter = CpuMeter(None, postmaster)

        log(f"warming up ({WARMUP} s each)")
        load(bare, CAPTURE_PATH, single_tpl, 1, WARMUP, None, bare_meter, "bare warm-up")
        reset_tables(url)
        load(service, CAPTURE_PATH, single_tpl, 1, WARMUP, url, service_meter, "single warm-up")
        load(service, BATCH_PATH, batch_tpl, BATCH_SIZE, WARMUP, url, service_meter, "batch warm-up")

        for r in range(1, ROUNDS + 1):
            log(f"round {r}/{ROUNDS}: {DURATION} s per measurement")
            bare_rounds.append(
                load(bare, CAPTURE_PATH, single_tpl, 1, DURATION, None, bare_meter, f"bare single capture #{r}")
            )
            reset_tables(url)
            single_rounds.append(
                load(service, CAPTURE_PATH, single_tpl, 1, DURATION, url, service_meter, f"single capture #{r}")
            )
            reset_tables(url)
            batch_rounds.append(
                load(service, BATCH_PATH, batch_tpl, BATCH_SIZE, DURATION, url, service_meter, f"batch capture #{r}")
            )
            copy_rounds.append(raw_copy(url, copy_chunks, DURATION, copy_meter, f"raw COPY #{r}"))

        if "ERROR" in service.log_path.read_text(errors="replace"):
            log("WARNING: the service logged errors:\n" + service.log_tail())

    best_bare = _best(bare_rounds, "requests_per_s")
    best_single = _best(single_rounds, "requests_per_s")
    best_batch = _best(batch_rounds, "events_per_s")
    best_copy = _best(copy_rounds, "rows_per_s")
    single_ratio = best_single["requests_per_s"] / best_bare["requests_per_s"]
    batch_ratio = best_batch["events_per_s"] / best_copy["rows_per_s"]
    results = {
        "timestamp": started.isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "machine": machine,
        "config": {
            "workers": WORKERS,
            "connections": CONNECTIONS,
            "wrk_threads": THREADS,
            "duration_s": DURATION,
            "warmup_s": WARMUP,
            "rounds": ROUNDS,
            "batch_size": BATCH_SIZE,
            "copy_rows_per_transaction": COPY_ROWS_PER_TXN,
            "uvicorn": "--loop uvloop --http httptools --no-access-log (ingest_api.serve.api_command)",
            "headline": "best round of each side (highest throughput; its latencies)",
        },
        "single_capture": {
            "service": best_single,
            "bare": best_bare,
            "ratio": round(single_ratio, 4),
            "ratio_per_round": [
                round(svc["requests_per_s"] / bare["requests_per_s"], 4)
                for svc, bare in zip(single_rounds, bare_rounds)
            ],
            "ratio_target": SINGLE_MIN_RATIO,
            "ratio_met": single_ratio >= SINGLE_MIN_RATIO,
            "p99_target_ms": SINGLE_MAX_P99_MS,
            "p99_met": best_single["latency_ms"]["p99"] < SINGLE_MAX_P99_MS,
            "service_rounds": single_rounds,
            "bare_rounds": bare_rounds,
        },
        "batch_capture": {
            "service": best_batch,
            "raw_copy": best_copy,
            "ratio": round(batch_ratio, 4),
            "ratio_per_round": [
                round(svc["events_per_s"] / raw["rows_per_s"], 4) for svc, raw in zip(batch_rounds, copy_rounds)
            ],
            "ratio_target": BATCH_MIN_RATIO,
            "ratio_met": batch_ratio >= BATCH_MIN_RATIO,
            "service_rounds": batch_rounds,
            "raw_copy_rounds": copy_rounds,
        },
    }
    s, b = results["single_capture"], results["batch_capture"]
    results["all_targets_met"] = bool(s["ratio_met"] and s["p99_met"] and b["ratio_met"])
    payload = json.dumps(results, indent=2) + "\n"
    (RESULTS_DIR / "latest.json").write_text(payload)
    (RESULTS_DIR / f"ingest-{started:%Y%m%dT%H%M%SZ}.json").write_text(payload)
    print(_summary(results))
    print(f"\nresults: {RESULTS_DIR / 'latest.json'}")
    return 0


if __name__ == "__main__":
    run_benchmark(main, "servers and Postgres")
