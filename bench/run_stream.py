"""`make bench-stream`: capture-to-delivery latency of a webhook destination at a steady capture rate, and what
running one costs the capture throughput (issue 17).

One run, on this machine, against a throwaway embedded Postgres, with three processes of the project's own,
each in its own process group so that its CPU time is measured apart:

- the API, started as `make bench` starts it (`eventtrack api`'s command line, bench/harness.py);
- the delivery worker, `eventtrack deliver`, with its settings from the environment (STREAM_POLL_SECONDS,
  DELIVERY_SCAN_SECONDS...: the defaults unless set);
- a webhook receiver (bench/stream_receiver.py, uvicorn with the API's command line) that answers 200 at once
  and logs, per delivery, the time it had read it, whether its signature verifies, and its events' uuids.

1. latency: one destination (created through the admin API, its defaults: batches of up to 100 events, 1 s
   max wait). The capture client sends BENCH_STREAM_BATCH (20) fresh events per request to the native
   batch endpoint at BENCH_STREAM_RATE (2,000) events/s for BENCH_STREAM_SECONDS (30 s), open loop: each
   request leaves on its schedule whatever the answers before it (a new connection when none is free). Each
   event's ack is the `time.time()` at which its request was answered 200; its latency is the receiver's
   `time.time()` at its first delivery minus its ack (one machine, one clock). Then up to
   BENCH_STREAM_DRAIN_LIMIT (60 s) for the last deliveries. Exit status 1 when an acked event was never
   delivered, or a delivery's signature did not verify.
2. throughput cost: the batch load of `make bench` (wrk, 100 events per request, bench/run_ingest.py's `load`,
   with its row checks) for BENCH_DURATION (10 s) without a destination (none defined; the worker and the
   receiver idle) and with one active destination delivering, in BENCH_STREAM_ROUNDS (2) pairs ordered
   A B B A ... so that a drift of the machine's other load hits both sides alike. The destination is created
   before its round (the worker takes it within DELIVERY_SCAN_SECONDS; the round starts once it has) and
   deleted after; every round starts from empty tables.

Before both, BENCH_WARMUP (3 s) of the batch load, then ANALYZE events: the latency phase reads a partition
with statistics and ~70,000 rows, as a deployment's (autovacuum analyzes them) rather than a fresh one.

Targets (the issue): p99 < 2 s; capture throughput with a destination within 10% of without (best round of
each side, as `make bench` reports). Results: bench/results/stream.json and a summary on stdout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import uvloop

from bench import harness
from bench.run_ingest import BATCH_PATH, BATCH_SIZE, DURATION, WARMUP, load, write_templates
from bench.run_spike import Connection, latencies, percentile
from eventtrack.migrate import migrate
from eventtrack.settings import Settings
from eventtrack.streaming import deliver_command
from eventtrack.streaming.destinations import LAG_COUNT_CAP, LOCK_NAMESPACE
from ingest_api.admin.key_store import create_admin_key

RATE = harness.env_int("BENCH_STREAM_RATE", 2000)
SECONDS = harness.env_int("BENCH_STREAM_SECONDS", 30)
PER_REQUEST = harness.env_int("BENCH_STREAM_BATCH", 20)
DRAIN_LIMIT = harness.env_int("BENCH_STREAM_DRAIN_LIMIT", 60)
ROUNDS = harness.env_int("BENCH_STREAM_ROUNDS", 2)
P99_TARGET_S = 2.0
THROUGHPUT_MIN_RATIO = 0.90

DESTINATIONS = "/api/v1/analytics/admin/destinations/"
SECRET = "whsec_stream_benchmark_" + "0" * 16
CAPTURE_TIMEOUT = 30.0


# --------------------------------------------------------------------------- the processes and the destination


class Admin:
    """The admin API of the running service, with a fresh admin key."""

    def __init__(self, base_url: str, database_url: str):
        _, key = create_admin_key(database_url, "stream benchmark")
        self.client = httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {key}"})
        deadline = time.monotonic() + 30
        while self.client.get(DESTINATIONS).status_code != 200:  # the server reads its keys every few seconds
            if time.monotonic() > deadline:
                raise harness.BenchFailure("the admin key was not accepted within 30 s")
            time.sleep(0.2)

    def create(self, hook_url: str) -> dict[str, Any]:
        answer = self.client.post(DESTINATIONS, json={"name": "stream benchmark", "url": hook_url, "secret": SECRET})
        if answer.status_code != 201:
            raise harness.BenchFailure(f"creating the destination: {answer.status_code} {answer.text}")
        return answer.json()

    def get(self, destination_id: int) -> dict[str, Any]:
        return self.client.get(f"{DESTINATIONS}{destination_id}/").json()

    def delete(self, destination_id: int) -> None:
        answer = self.client.delete(f"{DESTINATIONS}{destination_id}/")
        if answer.status_code >= 300:
            raise harness.BenchFailure(f"deleting the destination: {answer.status_code} {answer.text}")


def delivering(database_url: str, destination_id: int) -> bool:
    """Whether a worker holds the destination (its advisory lock, eventtrack/streaming/deliver.py)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return bool(
            conn.execute(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s"
                " AND objsubid = 2",
                (LOCK_NAMESPACE, destination_id),
            ).fetchone()
        )


def await_worker(url: str, destination_id: int, worker: harness.Process, *, holding: bool) -> None:
    """Until the worker holds the destination (it takes a new one within DELIVERY_SCAN_SECONDS), or no longer."""
    deadline = time.monotonic() + 60
    while delivering(url, destination_id) != holding:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise harness.BenchFailure(
                f"the worker {'took' if holding else 'let go of'} the destination not within 60 s"
            )
        time.sleep(0.1)


class Received:
    """The receiver's log, read as it grows: each uuid's first delivery time, and what else arrived."""

    def __init__(self, path: str):
        self.path = Path(path)
        self._offset = 0
        self.first: dict[str, float] = {}
        self.deliveries = 0
        self.events = 0
        self.bad_signatures = 0

    def read(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        self._offset += end
        for line in data[:end].decode().splitlines():
            at, ok, *uuids = line.split(" ")
            self.deliveries += 1
            self.events += len(uuids)
            self.bad_signatures += ok != "1"
            t = float(at)
            for u in uuids:
                self.first.setdefault(u, t)


# --------------------------------------------------------------------------- phase 1: latency


@dataclass
class Capture:
    """What the open-loop capture client saw."""

    acked: dict[str, float] = field(default_factory=dict)  # uuid -> time.time() of its 200
    statuses: dict[str, int] = field(default_factory=dict)
    request_seconds: list[float] = field(default_factory=list)  # of the 200 answers
    requests: int = 0
    connections: int = 0
    max_late: float = 0.0  # the most a request left after its scheduled time
    last_ack: float = 0.0


def body_parts(events: list[dict[str, Any]], sent_at: str) -> list[bytes]:
    """A batch body split around its "__UUID__" markers (bench/run_ingest.py's templates)."""
    return orjson.dumps({"sent_at": sent_at, "events": events}).split(b"__UUID__")


async def drive(host: str, port: int, parts: list[bytes], rate: int, seconds: int) -> Capture:
    """len(parts) - 1 fresh events per request, rate events/s, for `seconds`: open loop."""
    per_request = len(parts) - 1
    capture = Capture()
    loop = asyncio.get_running_loop()
    idle: list[Connection] = []

    async def send() -> None:
        if idle:
            conn = idle.pop()
        else:
            conn = Connection(host, port)
            capture.connections += 1
        uuids = [str(uuid.uuid4()) for _ in range(per_request)]
        body = parts[0] + b"".join(u.encode() + part for u, part in zip(uuids, parts[1:]))
        sent = time.time()
        try:
            answer = await conn.post(BATCH_PATH, body, gzipped=False, timeout=CAPTURE_TIMEOUT)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as err:
            key = type(err).__name__
            capture.statuses[key] = capture.statuses.get(key, 0) + 1
            return
        acked = time.time()
        capture.statuses[str(answer.status)] = capture.statuses.get(str(answer.status), 0) + 1
        if answer.status == 200:
            for u in uuids:
                capture.acked[u] = acked
            capture.request_seconds.append(acked - sent)
            capture.last_ack = max(capture.last_ack, acked)
        idle.append(conn)

    count = int(rate * seconds / per_request)
    interval = per_request / rate
    start = loop.time() + 0.05
    tasks = set()
    for i in range(count):
        due = start + i * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        capture.max_late = max(capture.max_late, loop.time() - due)
        task = loop.create_task(send())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        capture.requests += 1
    while tasks:
        await asyncio.gather(*list(tasks))
    for conn in idle:
        conn.close()
    return capture


def latency_phase(
    url: str,
    port: int,
    receiver: harness.Server,
    worker: harness.Process,
    admin: Admin,
    batch_events: list[dict[str, Any]],
    meter: harness.CpuMeter,
    *,
    rate: int = RATE,
    seconds: int = SECONDS,
    per_request: int = PER_REQUEST,
    drain_limit: float = DRAIN_LIMIT,
) -> dict[str, Any]:
    """Phase 1 against the API on `port`: a destination delivering to `receiver` through `worker`."""
    received = Received(receiver.env["STREAM_RECEIVER_LOG"])
    destination = admin.create(receiver.url + "/hook")
    await_worker(url, destination["id"], worker, holding=True)
    parts = body_parts(batch_events[:per_request], datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    harness.log(
        f"latency: {rate:,} events/s for {seconds} s, {per_request} events per request "
        f"({rate / per_request:.0f} requests/s, open loop), destination {destination['id']}"
    )
    cpu0, proc0, t0 = meter.sample(), time.process_time(), time.monotonic()
    capture = uvloop.run(drive("127.0.0.1", port, parts, rate, seconds))
    load_wall = time.monotonic() - t0
    harness.log(f"capture done in {load_wall:.1f} s: {capture.statuses}; waiting for the deliveries")
    deadline = time.monotonic() + drain_limit
    while True:
        received.read()
        missing = capture.acked.keys() - received.first.keys()
        if not missing or time.monotonic() > deadline:
            break
        worker.check_alive()
        receiver.check_alive()
        time.sleep(0.2)
    wall = time.monotonic() - t0
    cpu1, proc1 = meter.sample(), time.process_time()
    row = admin.get(destination["id"])
    admin.delete(destination["id"])
    await_worker(url, destination["id"], worker, holding=False)

    delivered = [received.first[u] - acked for u, acked in capture.acked.items() if u in received.first]
    last_delivery = max((received.first[u] for u in capture.acked if u in received.first), default=None)
    acked = len(capture.acked)
    unexpected = len(received.first.keys() - capture.acked.keys())
    result = {
        "destination": {
            k: row[k] for k in ("batch_size", "max_wait_ms", "timeout_ms", "delivered_events", "delivered_batches")
        },
        "offered_events_per_s": rate,
        "events_per_request": per_request,
        "seconds": seconds,
        "requests": capture.requests,
        "answers": dict(sorted(capture.statuses.items())),
        "connections_opened": capture.connections,
        "max_send_lateness_s": round(capture.max_late, 4),
        "capture_latency_s": latencies(capture.request_seconds),
        "acked_events": acked,
        "achieved_events_per_s": round(acked / load_wall, 1),
        "delivered_acked_events": len(delivered),
        "never_delivered": acked - len(delivered),
        "deliveries": received.deliveries,
        "events_per_delivery": round(received.events / max(1, received.deliveries), 1),
        "duplicate_deliveries": received.events - len(received.first),
        "delivered_but_not_acked": unexpected,
        "bad_signatures": received.bad_signatures,
        "latency_s": latencies(delivered)
        | {
            "p90": _round(percentile(delivered, 0.9)),
            "min": _round(min(delivered, default=None)),
            "mean": _round(statistics.fmean(delivered)) if delivered else None,
        },
        "last_delivery_after_last_ack_s": _round(last_delivery - capture.last_ack) if last_delivery else None,
        "wall_seconds": round(wall, 1),
        "cpu_percent": harness.cpu_percent(cpu0, cpu1, wall, client=proc1 - proc0),
        # Over the whole window (load and drain), per acked event; the worker's idle polls are in it.
        "cpu_us_per_event": harness.cpu_us_per_event(cpu0, cpu1, acked)
        | {"client": round(1e6 * (proc1 - proc0) / max(1, acked), 1)},
    }
    result["p99_met"] = result["latency_s"]["p99"] is not None and result["latency_s"]["p99"] < P99_TARGET_S
    harness.log(
        f"latency: {len(delivered):,} of {acked:,} acked events delivered; p50 {result['latency_s']['p50']} s,"
        f" p99 {result['latency_s']['p99']} s, max {result['latency_s']['max']} s"
    )
    return result


# --------------------------------------------------------------------------- phase 2: throughput cost


def throughput_phase(
    url: str,
    service: harness.Server,
    receiver: harness.Server,
    worker: harness.Process,
    admin: Admin,
    batch_tpl: Path,
    meter: harness.CpuMeter,
) -> dict[str, Any]:
    order = [
        side for r in range(ROUNDS) for side in (("none", "destination") if r % 2 == 0 else ("destination", "none"))
    ]
    rounds: dict[str, list[dict[str, Any]]] = {"none": [], "destination": []}
    for i, side in enumerate(order, 1):
        harness.reset_tables(url)
        label = f"{'with' if side == 'destination' else 'without'} destination #{len(rounds[side]) + 1}"
        harness.log(f"throughput round {i}/{len(order)}: {label}, {DURATION} s")
        if side == "none":
            rounds[side].append(load(service, BATCH_PATH, batch_tpl, BATCH_SIZE, DURATION, url, meter, label))
            continue
        d = admin.create(receiver.url + "/hook")
        await_worker(url, d["id"], worker, holding=True)
        out = load(service, BATCH_PATH, batch_tpl, BATCH_SIZE, DURATION, url, meter, label)
        row = admin.get(d["id"])
        out["delivery"] = {
            "delivered_events_by_round_end": row["delivered_events"],
            "delivered_events_per_s": round(row["delivered_events"] / out["duration_s"], 1),
            "lag_events_at_round_end": row["lag"]["events"],
            "note": "round end: wrk's end plus the row count settling (~2 s)",
        }
        admin.delete(d["id"])
        await_worker(url, d["id"], worker, holding=False)
        rounds[side].append(out)
    best = {side: max(r["events_per_s"] for r in runs) for side, runs in rounds.items()}
    median = {side: statistics.median(r["events_per_s"] for r in runs) for side, runs in rounds.items()}
    ratio = best["destination"] / best["none"]
    return {
        "order": order,
        "events_per_s_best": best,
        "events_per_s_median": median,
        "ratio": round(ratio, 4),
        "ratio_of_medians": round(median["destination"] / median["none"], 4),
        "ratio_target": THROUGHPUT_MIN_RATIO,
        "ratio_met": ratio >= THROUGHPUT_MIN_RATIO,
        "rounds_without": rounds["none"],
        "rounds_with": rounds["destination"],
    }


# --------------------------------------------------------------------------- the run


def run() -> dict[str, Any]:
    started = datetime.now(UTC)
    settings = Settings.from_env()
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="etstream-", dir="/tmp"))
        stack.callback(shutil.rmtree, workdir, True)
        pg = stack.enter_context(harness.throwaway_postgres())
        url = pg.url()
        migrate(url, 90, 7)
        machine = harness.machine_info(url)
        _, batch_tpl, batch_events = write_templates(workdir, started)
        if PER_REQUEST > len(batch_events):
            raise harness.BenchFailure(f"BENCH_STREAM_BATCH must be at most BENCH_BATCH_SIZE ({len(batch_events)})")
        received_log = workdir / "received.log"
        service = stack.enter_context(harness.serving("service", "ingest_api.asgi:app", url, workdir))
        receiver = stack.enter_context(
            harness.serving(
                "receiver",
                "bench.stream_receiver:app",
                url,
                workdir,
                {"STREAM_RECEIVER_LOG": str(received_log), "STREAM_RECEIVER_SECRET": SECRET},
            )
        )
        env = {**os.environ, "DATABASE_URL": url}
        worker = stack.enter_context(harness.running(harness.Process("worker", deliver_command(), env, workdir)))
        meter = harness.CpuMeter(
            service.pgid, harness.postmaster_pid(pg.pgdata), worker=worker.pgid, receiver=receiver.pgid
        )
        admin = Admin(service.url, url)
        stack.callback(admin.client.close)
        # A deployment's partitions have statistics (autovacuum's ANALYZE): without them the planner reads a whole
        # partition for a window of ingest_seq (docs/performance.md "Streaming"). The warm-up's rows give them.
        harness.log(f"warming up ({WARMUP} s of the batch load), then ANALYZE events")
        load(service, BATCH_PATH, batch_tpl, BATCH_SIZE, WARMUP, url, meter, "batch warm-up")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE events")
        latency = latency_phase(url, service.port, receiver, worker, admin, batch_events, meter)
        throughput = throughput_phase(url, service, receiver, worker, admin, batch_tpl, meter)
        logs = {p.name: p.log_path.read_text(errors="replace") for p in (service, worker, receiver)}
    return {
        "timestamp": started.isoformat(timespec="seconds"),
        "machine": machine,
        "config": {
            "rate_events_per_s": RATE,
            "seconds": SECONDS,
            "events_per_request": PER_REQUEST,
            "drain_limit_s": DRAIN_LIMIT,
            "throughput_rounds_each": ROUNDS,
            "throughput_duration_s": DURATION,
            "throughput_batch_size": BATCH_SIZE,
            "workers": harness.WORKERS,
            "stream_poll_seconds": settings.stream_poll_seconds,
            "delivery_scan_seconds": settings.delivery_scan_seconds,
        },
        "latency": latency,
        "throughput": throughput,
        "log_problems": {
            name: [ln[:300] for ln in text.splitlines() if "ERROR" in ln or "Traceback" in ln][:5]
            for name, text in logs.items()
        },
    }


def failures(result: dict[str, Any]) -> list[str]:
    lat = result["latency"]
    problems = []
    if lat["never_delivered"]:
        problems.append(
            f"{lat['never_delivered']} acked events were not delivered within {DRAIN_LIMIT} s of the end of the load"
        )
    if lat["bad_signatures"]:
        problems.append(f"{lat['bad_signatures']} deliveries whose signature did not verify")
    return problems


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summary(result: dict[str, Any]) -> str:
    lat, thr, m = result["latency"], result["throughput"], result["machine"]
    met = lambda ok: "MET" if ok else "NOT MET"  # noqa: E731
    cpu = lambda r: ", ".join(f"{k} {v:.0f}%" for k, v in r["cpu_percent"].items())  # noqa: E731
    per_event = lambda r: ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_us_per_event"].items())  # noqa: E731
    ls = lat["latency_s"]
    lines = [
        "",
        f"Streaming benchmark ({result['timestamp']}; {m['cpus']} CPUs {m['cpu_model']}; load average at start "
        f"{m['loadavg_at_start'][0]:.2f}; STREAM_POLL_SECONDS {result['config']['stream_poll_seconds']})",
        "",
        f"Latency: {lat['offered_events_per_s']:,} events/s offered for {lat['seconds']} s, {lat['events_per_request']}"
        f" per request, open loop; destination batch_size {lat['destination']['batch_size']},"
        f" max_wait_ms {lat['destination']['max_wait_ms']}",
        f"  capture: {lat['acked_events']:,} events acked ({lat['achieved_events_per_s']:,.0f}/s), answers "
        f"{lat['answers']}, request latency p50 {lat['capture_latency_s']['p50']} s p99 "
        f"{lat['capture_latency_s']['p99']} s; latest send {lat['max_send_lateness_s']} s behind schedule",
        f"  delivered: {lat['delivered_acked_events']:,} of {lat['acked_events']:,} acked events"
        f" ({lat['never_delivered']} never) in {lat['deliveries']:,} deliveries of {lat['events_per_delivery']} events;"
        f" {lat['duplicate_deliveries']} duplicates, {lat['bad_signatures']} bad signatures",
        f"  capture-to-delivery (receiver time - ack time): p50 {ls['p50']} s, p90 {ls['p90']} s, p99 {ls['p99']} s,"
        f" max {ls['max']} s, min {ls['min']} s  -> p99 < {P99_TARGET_S:.0f} s: {met(lat['p99_met'])}",
        f"  CPU over {lat['wall_seconds']} s (% of one core): {cpu(lat)}",
        f"  CPU us per acked event: {per_event(lat)}",
        "",
        f"Throughput: wrk batch load ({BATCH_SIZE} events per request, {DURATION} s), rounds {' '.join(thr['order'])}",
    ]
    for side, key in (("without", "rounds_without"), ("with", "rounds_with")):
        for i, r in enumerate(thr[key], 1):
            extra = ""
            if "delivery" in r:
                d = r["delivery"]
                behind = d["lag_events_at_round_end"]
                extra = (
                    f"; delivered {d['delivered_events_by_round_end']:,} ({d['delivered_events_per_s']:,.0f}/s),"
                    f" {'at least ' if behind >= LAG_COUNT_CAP else ''}{behind:,} behind"
                )
            lines.append(
                f"  {side:>7} destination #{i}: {r['events_per_s']:>9,.0f} events/s{extra}\n"
                f"        CPU %: {cpu(r)}; us/event: {per_event(r)}"
            )
    lines += [
        f"  best: without {thr['events_per_s_best']['none']:,.0f}, with {thr['events_per_s_best']['destination']:,.0f}"
        f" events/s: {thr['ratio']:.1%} (medians {thr['ratio_of_medians']:.1%}) -> within"
        f" {1 - THROUGHPUT_MIN_RATIO:.0%}: {met(thr['ratio_met'])}",
        "",
        "[CPU in % of one core; 'others' is load from outside the benchmark, 'steal' time the VM host took]",
    ]
    for name, problems in result["log_problems"].items():
        if problems:
            lines.append(f"{name} logged: {problems[0]}")
    return "\n".join(lines)


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench-stream installs it: apt-get install wrk)", file=sys.stderr)
        return 2
    result = run()
    return harness.report_checked(result, "stream", failures(result), summary(result))


if __name__ == "__main__":
    harness.run_benchmark(main, "the service, the worker, the receiver and Postgres")
