"""`make bench-spike`: 10x the sustained batch capacity for 30 s, buffered by the SDKs' retry queues.

One run, on this machine, against a throwaway embedded Postgres and the real service (uvicorn started with
`eventtrack api`'s command line, in its own process group):

1. capacity: BENCH_SPIKE_CAPACITY_CONNECTIONS (64) connections send batches of BENCH_SPIKE_BATCH (100) fresh
   events to the PostHog `/batch/` endpoint back to back (closed loop) for BENCH_SPIKE_CAPACITY_SECONDS (10 s)
   after a 2 s warm-up: C events/s. BENCH_SPIKE_CAPACITY=<events/s> skips the measurement. Then the tables are
   emptied.
2. spike: for BENCH_SPIKE_SECONDS (30 s), events are created at BENCH_SPIKE_FACTOR (10) x C events/s into the
   queues of BENCH_SPIKE_CLIENTS (2000) simulated SDK clients, evenly over time (client i at a rate spread from
   0.5x to 1.5x the mean, so their flushes do not fall in step). Each client is one SDK instance: a queue, one
   connection, one request in flight; it flushes up to BENCH_SPIKE_BATCH events when it holds that many (or
   when its oldest event is older than the SDK's flush interval, or creation is over); on 429/5xx it pauses as
   the SDK named by BENCH_SPIKE_POLICY does (`RETRY_POLICIES`: android by default), on a timeout or a
   connection error it backs off and resends the same events (same uuids: the server's dedup absorbs a batch
   that was committed after all). Unlike the stock SDKs it never drops events after `maxRetries` failures; how
   often a stock SDK would have is counted.
3. drain: after creation stops the clients keep flushing until every queue is empty; the drain time runs from
   the end of the spike to the last 200.

Checks (exit status 1): `events` holds exactly the events created, each once (count, count of distinct uuids,
and per client: count and highest sequence number); every request was answered within the SDK's timeout, with
200 or a 503/429 carrying Retry-After; the API process group's RSS (sampled every BENCH_SPIKE_SAMPLE_MS,
500 ms) stayed under `memory_bound()`; the queues drained within BENCH_SPIKE_DRAIN_LIMIT (900 s) of the end of
the spike. Results: bench/results/spike.json and a summary on stdout.
The server reads its own settings from the environment: MAX_QUEUED_ROWS=50000 make bench-spike works.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import statistics
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import uvloop

from bench import harness
from eventtrack.migrate import migrate
from eventtrack.settings import Settings
from ingest_api.decode import parse_json
from ingest_api.posthog.translate import read_payload, translate_event
from ingest_api.validation import Limits, normalize_event, parse_batch_sent_at

BATCH_PATH = "/batch/"  # PostHog's: what the mobile SDKs post to
SPIKE_SECONDS = harness.env_int("BENCH_SPIKE_SECONDS", 30)
FACTOR = harness.env_int("BENCH_SPIKE_FACTOR", 10)
CAPACITY = harness.env_int("BENCH_SPIKE_CAPACITY", 0)  # events/s; 0: measure it
CAPACITY_SECONDS = harness.env_int("BENCH_SPIKE_CAPACITY_SECONDS", 10)
CAPACITY_WARMUP = 2
CAPACITY_CONNECTIONS = harness.env_int("BENCH_SPIKE_CAPACITY_CONNECTIONS", 64)
# 2000 clients x 100 events in flight = the default MAX_QUEUED_ROWS: enough to fill the service's whole queue.
CLIENTS = harness.env_int("BENCH_SPIKE_CLIENTS", 2000)
BATCH = harness.env_int("BENCH_SPIKE_BATCH", 100)
GZIP = harness.env_int("BENCH_SPIKE_GZIP", 0) == 1
POLICY = os.environ.get("BENCH_SPIKE_POLICY", "android").strip() or "android"
DRAIN_LIMIT = harness.env_int("BENCH_SPIKE_DRAIN_LIMIT", 900)
SAMPLE_SECONDS = harness.env_int("BENCH_SPIKE_SAMPLE_MS", 500) / 1000
# uvicorn closes a connection idle for 5 s (its --timeout-keep-alive default): reconnect before, as an HTTP
# client's pool does, rather than count the race as a connection error.
REUSE_IDLE_SECONDS = 4.0
API_KEY = "phc_spike_benchmark"
UVICORN_READ_BUFFER = 65536  # uvicorn pauses reading a connection past this much unread body


# --------------------------------------------------------------------------- the SDKs' retry policies


@dataclass(frozen=True)
class RetryPolicy:
    """How long an SDK pauses its queue after its `failures`-th failure in a row (Retry-After in seconds or None)."""

    name: str
    source: str
    delay: Callable[[int, float | None], float]
    request_timeout: float  # the SDK's HTTP timeout
    flush_interval: float  # the SDK flushes what it holds at least this often
    stock_max_retries: int  # after this many retries the stock SDK drops (not done here; counted)
    stock_drops_queue: bool  # what it drops: its whole queue (the mobile SDKs) or the batch (posthog-python)


def _android_delay(failures: int, retry_after: float | None) -> float:
    if retry_after:
        return retry_after
    return min(2.0 ** (failures - 1), 30.0)


def _ios_delay(failures: int, retry_after: float | None) -> float:
    return max(min(failures * 1.0, 30.0), retry_after or 0.0)


def _python_delay(failures: int, retry_after: float | None) -> float:
    return max(min(2.0 ** (failures - 1), 30.0), min(retry_after or 0.0, 30.0))


# Read from each SDK's main branch (2026-08): the queue pauses, then the same first events are sent again.
RETRY_POLICIES = {
    "android": RetryPolicy(
        "android",
        "posthog-android PostHogQueue.calculateDelay: Retry-After when > 0, else 2^(n-1) s capped at 30 s; "
        "no jitter; OkHttp 10 s timeouts; flushIntervalSeconds 30; maxRetries 3 then the queue is dropped",
        _android_delay,
        10.0,
        30.0,
        3,
        True,
    ),
    "ios": RetryPolicy(
        "ios",
        "posthog-ios PostHogQueue.handleResult: max(min(n x 1 s, 30 s), Retry-After); no jitter; "
        "10 s request timeout; flushIntervalSeconds 30; maxRetries 3 then the queue is dropped",
        _ios_delay,
        10.0,
        30.0,
        3,
        True,
    ),
    "python": RetryPolicy(
        "python",
        "posthog-python capture_v1._backoff: max(min(2^attempt, 30), min(Retry-After, 30)) s; no jitter; "
        "15 s timeout; flush_interval 5 s; 10 retries then the batch is dropped",
        _python_delay,
        15.0,
        5.0,
        10,
        False,
    ),
}


# --------------------------------------------------------------------------- events


_KINDS = (
    ("$screen", {"$screen_name": "home"}),
    ("product_viewed", {"product_id": "sku-1042", "price": 19.99, "currency": "EUR"}),
    ("add_to_cart", {"product_id": "sku-1042", "cart_items": 3, "cart_value": 59.97}),
    ("$screen", {"$screen_name": "checkout"}),
    ("purchase", {"order_value": 59.97, "currency": "EUR", "coupon": None, "items": ["sku-1042", "sku-7"]}),
)


def event_tails(client: int) -> list[str]:
    """One client's pre-encoded events without their uuid and timestamp (the JSON after `"timestamp":"..."`)."""
    ios = client % 2 == 0
    device = {
        "$os": "iOS" if ios else "Android",
        "$os_version": "17.5.1" if ios else "14",
        "$app_version": "3.14.2",
        "$app_build": "3142",
        "$device_id": f"device-{client:05d}",
        "$device_type": "Mobile",
        "$session_id": f"0190a1b2-c3d4-7e5f-8a9b-{client:012x}",
        "$lib": "posthog-ios" if ios else "posthog-android",
        "$lib_version": "3.8.0",
        "$locale": "en-GB",
        "$screen_width": 1170,
        "$screen_height": 2532,
        "$network_wifi": client % 3 != 0,
    }
    tails = []
    for event, props in _KINDS:
        rest = orjson.dumps({"event": event, "distinct_id": f"user-{client:05d}", "properties": {**device, **props}})
        tails.append(rest[1:].decode())  # without its "{": it follows the uuid and timestamp
    return tails


class Clock:
    """ISO timestamps of wall-clock milliseconds, the formatting of each second done once."""

    def __init__(self) -> None:
        self._seconds: dict[int, str] = {}

    def iso(self, ms: int) -> str:
        second, milli = divmod(ms, 1000)
        prefix = self._seconds.get(second)
        if prefix is None:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._seconds[second] = prefix
        return f"{prefix}{milli:03d}Z"


def event_json(tails: list[str], clock: Clock, nonce: int, client: int, seq: int, ms: int) -> str:
    """Event `seq` of `client`: a UUIDv7 of its creation time (as the mobile SDKs send) that also carries
    (nonce, client, seq), so it is unique, the same on every resend, and the check can read it back."""
    return (
        f'{{"uuid":"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7{nonce:03x}-{0x8000 | client:04x}-{seq:012x}",'
        f'"timestamp":"{clock.iso(ms)}",{tails[seq % len(tails)]}'
    )


# --------------------------------------------------------------------------- HTTP


class Answer:
    __slots__ = ("status", "retry_after")

    def __init__(self, status: int, retry_after: float | None):
        self.status = status
        self.retry_after = retry_after


class Connection:
    """One keep-alive HTTP/1.1 connection: a few µs of Python per request where an HTTP library costs ~0.3 ms,
    which matters with the clients, the server and Postgres on the same two cores."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def post(self, path: str, body: bytes, *, gzipped: bool, timeout: float) -> Answer:
        loop = asyncio.get_running_loop()
        if self.writer is not None and loop.time() - self.used > REUSE_IDLE_SECONDS:
            self.close()
        try:
            async with asyncio.timeout(timeout):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                    f"{'Content-Encoding: gzip' + chr(13) + chr(10) if gzipped else ''}"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                self.writer.writelines((head, body))
                header = await self.reader.readuntil(b"\r\n\r\n")
                status = int(header[9:12])
                length, retry_after, close = 0, None, False
                for line in header.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"retry-after":
                        retry_after = float(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                if length:
                    await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        self.used = loop.time()
        if close:
            self.close()
        return Answer(status, retry_after)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# --------------------------------------------------------------------------- the simulated SDK clients


@dataclass
class Tally:
    """What every client saw, in one place (one event loop: no locks)."""

    created: int = 0  # events created (the spike's clients' totals)
    acked: int = 0  # events answered 200
    statuses: dict[str, int] = field(default_factory=dict)  # "200", "503", "timeout", "connection_error"...
    unexpected: list[str] = field(default_factory=list)  # answers outside 200 / 503 or 429 with Retry-After
    resends_after_errors: int = 0  # attempts that resent a batch after a timeout or connection error
    retries_honoured: int = 0  # resends after a Retry-After answer, each checked to wait at least that long
    shortest_wait_over_retry_after: float | None = None  # min over those of (wait - Retry-After), seconds
    stock_sdk_drops: int = 0  # times a stock SDK would have dropped its queue or batch (maxRetries exceeded)
    stock_sdk_events_dropped: int = 0  # distinct events those drops would have cost
    longest_failure_streak: int = 0
    last_ack: float | None = None  # loop time
    request_seconds: list[float] = field(default_factory=list)  # latency of the 200 answers
    refusal_seconds: list[float] = field(default_factory=list)  # latency of the 503 / 429 answers

    def count(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1


class SdkClient:
    """One SDK instance: events enter its queue at `rate` per second from `start` until `total` were created."""

    def __init__(
        self,
        index: int,
        url_host: str,
        port: int,
        tally: Tally,
        policy: RetryPolicy,
        *,
        nonce: int,
        start: float,
        wall_start_ms: int,
        rate: float,
        total: int,
        batch: int,
        gzipped: bool,
        clock: Clock,
    ):
        self.index = index
        self.conn = Connection(url_host, port)
        self.tally = tally
        self.policy = policy
        self.nonce = nonce
        self.start = start
        self.wall_start_ms = wall_start_ms
        self.rate = rate
        self.total = total
        self.batch = batch
        self.gzipped = gzipped
        self.clock = clock
        self.tails = event_tails(index)
        self.head = 0  # events [0, head) were answered 200
        self.failures = 0  # failures in a row
        self.paused_until = 0.0
        self.counted_dropped = 0  # events already counted in stock_sdk_events_dropped
        self.last_answer: tuple[float, float] | None = None  # (time, Retry-After) of the last refusal
        self._cache: tuple[int, int, str] | None = None  # (head, n, events JSON) of the batch in hand

    def created(self, now: float) -> int:
        return max(0, min(self.total, int(self.rate * (now - self.start))))

    def created_at(self, seq: int) -> float:
        """Loop time at which event `seq` is created."""
        return self.start + (seq + 1) / self.rate

    def event_ms(self, seq: int) -> int:
        return self.wall_start_ms + int((seq + 1) * 1000 / self.rate)

    def events_json(self, first: int, n: int) -> str:
        if self._cache is not None and self._cache[:2] == (first, n):
            return self._cache[2]
        tails, clock, nonce, client, event_ms = self.tails, self.clock, self.nonce, self.index, self.event_ms
        text = ",".join(event_json(tails, clock, nonce, client, seq, event_ms(seq)) for seq in range(first, first + n))
        self._cache = (first, n, text)
        return text

    def body(self, first: int, n: int) -> bytes:
        """The SDK sets sent_at at every attempt (the server's clock-skew correction reads it)."""
        sent_at = self.clock.iso(int(time.time() * 1000))
        text = f'{{"api_key":"{API_KEY}","batch":[{self.events_json(first, n)}],"sent_at":"{sent_at}"}}'
        data = text.encode()
        return gzip.compress(data, compresslevel=6) if self.gzipped else data

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        sleep = asyncio.sleep
        try:
            while True:
                now = loop.time()
                if self.paused_until > now:
                    await sleep(self.paused_until - now)
                    continue
                created = self.created(now)
                pending = created - self.head
                if pending <= 0 and created >= self.total:
                    return
                creating = created < self.total
                oldest_due = self.created_at(self.head) + self.policy.flush_interval
                if pending < self.batch and creating and not (pending > 0 and now >= oldest_due):
                    full_at = self.created_at(self.head + self.batch - 1)
                    wake = min(full_at, oldest_due, self.start + (self.total + 1) / self.rate)
                    await sleep(max(0.0, wake - now) + 0.001)
                    continue
                await self.send(loop, min(pending, self.batch))
        finally:
            self.conn.close()

    async def send(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        tally = self.tally
        first = self.head
        body = self.body(first, n)
        sent = loop.time()
        if self.last_answer is not None:
            answered, retry_after = self.last_answer
            waited = sent - answered - retry_after
            tally.retries_honoured += 1
            if tally.shortest_wait_over_retry_after is None or waited < tally.shortest_wait_over_retry_after:
                tally.shortest_wait_over_retry_after = waited
            self.last_answer = None
        try:
            answer = await self.conn.post(BATCH_PATH, body, gzipped=self.gzipped, timeout=self.policy.request_timeout)
        except TimeoutError:
            tally.count("timeout")
            self.failed(loop, None)
            tally.resends_after_errors += 1
            return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            tally.count("connection_error")
            self.failed(loop, None)
            tally.resends_after_errors += 1
            return
        status = answer.status
        tally.count(str(status))
        now = loop.time()
        if status == 200:
            self.head += n
            self.failures = 0
            tally.acked += n
            tally.request_seconds.append(now - sent)
            tally.last_ack = now
            return
        if status in (429, 503) and answer.retry_after is not None:
            tally.refusal_seconds.append(now - sent)
            self.last_answer = (now, answer.retry_after)
            self.failed(loop, answer.retry_after)
            return
        if len(tally.unexpected) < 20:
            tally.unexpected.append(f"client {self.index}: status {status}, Retry-After {answer.retry_after}")
        if status >= 500 or status == 429:
            self.failed(loop, answer.retry_after)  # the SDKs retry these too
            return
        self.head += n  # another 4xx: the SDKs drop the batch (the row check then reports it)

    def failed(self, loop: asyncio.AbstractEventLoop, retry_after: float | None) -> None:
        tally = self.tally
        self.failures += 1
        tally.longest_failure_streak = max(tally.longest_failure_streak, self.failures)
        if self.failures % (self.policy.stock_max_retries + 1) == 0:
            # A stock SDK would drop its queue (or this batch) here; counted once per event.
            created = self.created(loop.time())
            upto = created if self.policy.stock_drops_queue else min(created, self.head + self.batch)
            tally.stock_sdk_drops += 1
            tally.stock_sdk_events_dropped += max(0, upto - max(self.head, self.counted_dropped))
            self.counted_dropped = max(self.counted_dropped, upto)
        self.paused_until = loop.time() + self.policy.delay(self.failures, retry_after)


# --------------------------------------------------------------------------- phases


def spread_rates(total_rate: float, clients: int) -> list[float]:
    """Per-client rates from 0.5x to 1.5x the mean, summing to `total_rate`: devices differ, and clients
    created in step would all flush in the same millisecond."""
    if clients == 1:
        return [total_rate]
    return [total_rate / clients * (0.5 + i / (clients - 1)) for i in range(clients)]


@dataclass
class Spike:
    """The spike's clients and what they saw; `run` drives them until every queue is empty."""

    host: str
    port: int
    rate: float  # events/s created, all clients together
    seconds: float
    clients: int
    batch: int
    policy: RetryPolicy
    gzipped: bool = False
    nonce: int = 2
    drain_limit: float = DRAIN_LIMIT
    tally: Tally = field(default_factory=Tally)
    sdk_clients: list[SdkClient] = field(default_factory=list)
    start: float = 0.0
    drained: bool = False
    samples: list[dict[str, Any]] = field(default_factory=list)

    def backlog(self, now: float) -> int:
        """Events created and not yet answered 200."""
        return sum(c.created(now) for c in self.sdk_clients) - self.tally.acked

    async def run(self, on_sample: Callable[[float], dict[str, Any]] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.start = loop.time() + 0.05
        wall_ms = int((time.time() + 0.05) * 1000)
        clock = Clock()
        for i, rate in enumerate(spread_rates(self.rate, self.clients)):
            self.sdk_clients.append(
                SdkClient(
                    i,
                    self.host,
                    self.port,
                    self.tally,
                    self.policy,
                    nonce=self.nonce,
                    start=self.start,
                    wall_start_ms=wall_ms,
                    rate=rate,
                    total=int(rate * self.seconds),
                    batch=self.batch,
                    gzipped=self.gzipped,
                    clock=clock,
                )
            )
        self.tally.created = sum(c.total for c in self.sdk_clients)
        tasks = [asyncio.create_task(c.run()) for c in self.sdk_clients]
        sampler = asyncio.create_task(self._sample(on_sample))
        try:
            done, pending = await asyncio.wait(tasks, timeout=self.seconds + self.drain_limit)
            self.drained = not pending
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()  # a bug in the client must fail the run, not pass silently
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)

    async def _sample(self, on_sample: Callable[[float], dict[str, Any]] | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            sample = {
                "t": round(now - self.start, 2),
                "backlog": self.backlog(now),
                "acked": self.tally.acked,
                "refused": sum(v for k, v in self.tally.statuses.items() if k != "200"),
            }
            if on_sample is not None:
                sample.update(on_sample(now - self.start))
            self.samples.append(sample)
            await asyncio.sleep(SAMPLE_SECONDS)


async def measure_capacity(host: str, port: int, connections: int, seconds: float, batch: int) -> dict[str, Any]:
    """Batches of fresh events back to back on `connections` connections: the events/s answered 200."""
    loop = asyncio.get_running_loop()
    clock = Clock()
    statuses: dict[str, int] = {}
    window: list[int] = [0]
    begin = loop.time()
    measure_from, measure_to = begin + CAPACITY_WARMUP, begin + CAPACITY_WARMUP + seconds

    async def worker(index: int) -> None:
        conn, tails, seq = Connection(host, port), event_tails(index), 0
        try:
            while loop.time() < measure_to:
                ms = int(time.time() * 1000)
                events = ",".join(event_json(tails, clock, 1, index, s, ms) for s in range(seq, seq + batch))
                seq += batch
                body = f'{{"api_key":"{API_KEY}","batch":[{events}],"sent_at":"{clock.iso(ms)}"}}'.encode()
                answer = await conn.post(BATCH_PATH, body, gzipped=False, timeout=30)
                statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
                if answer.status == 200 and measure_from <= loop.time() <= measure_to:
                    window[0] += batch
                elif answer.status != 200:
                    await asyncio.sleep(answer.retry_after or 1)
        finally:
            conn.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    return {
        "events_per_s": round(window[0] / seconds, 1),
        "events_in_window": window[0],
        "seconds": seconds,
        "connections": connections,
        "batch": batch,
        "statuses": statuses,
    }


# --------------------------------------------------------------------------- checks


def stored_per_client(url: str, nonce: int) -> dict[int, tuple[int, int, int]]:
    """client -> (rows, distinct uuids, highest sequence number) of the events of this run's `nonce`."""
    query = """
        SELECT ('x' || substr(uuid::text, 20, 4))::bit(16)::int & 16383 AS client,
               count(*), count(DISTINCT uuid),
               max(('x' || lpad(substr(uuid::text, 25, 12), 16, '0'))::bit(64)::bigint)
        FROM events WHERE substr(uuid::text, 15, 4) = %s GROUP BY 1
    """
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(query, (f"7{nonce:03x}",)).fetchall()
    return {client: (n, distinct, top) for client, n, distinct, top in rows}


def check_exactly_once(url: str, spike: Spike) -> dict[str, Any]:
    """Every created event stored, none twice, nothing else: the whole table and client by client."""
    with psycopg.connect(url, autocommit=True) as conn:
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT uuid) FROM events").fetchone()
        rejected = conn.execute("SELECT count(*) FROM rejected_events").fetchone()[0]
    per_client = stored_per_client(url, spike.nonce)
    wrong = [
        f"client {c.index}: created {c.total}, stored {per_client.get(c.index, (0, 0, -1))}"
        for c in spike.sdk_clients
        if per_client.get(c.index, (0, 0, -1)) != ((c.total, c.total, c.total - 1) if c.total else (0, 0, -1))
    ]
    created = spike.tally.created
    return {
        "created": created,
        "stored": total,
        "distinct_uuids": distinct,
        "rejected_events": rejected,
        "clients_not_exact": len(wrong),
        "examples": wrong[:5],
        "ok": total == created and distinct == total and not wrong and rejected == 0,
    }


def held_bytes_per_event(settings: Settings, batch: int) -> float:
    """What the service holds per event of a request waiting for its commit, from the real parsing code:
    the body, its parsed JSON, the translated events and the rows (what `posthog.capture` keeps alive while it
    awaits the sink), measured with tracemalloc over 20 such requests."""
    clock = Clock()
    now = datetime.now(UTC)
    limits = Limits(
        settings.max_event_bytes,
        settings.max_properties_depth,
        timedelta(hours=settings.max_future_skew_hours),
        now - timedelta(days=settings.events_retention_days),
    )
    ms = int(time.time() * 1000)
    tails = event_tails(7)
    held = []
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for r in range(20):
        events = ",".join(event_json(tails, clock, 9, 7, s, ms) for s in range(r * batch, (r + 1) * batch))
        raw = f'{{"api_key":"{API_KEY}","batch":[{events}],"sent_at":"{clock.iso(ms)}"}}'.encode()
        value, sanitize = parse_json(raw)
        payload = read_payload(value)
        sent_at = parse_batch_sent_at(payload.sent_at)
        natives = [translate_event(e, now) for e in payload.events]
        rows = [
            normalize_event(n, received_at=now, batch_sent_at=sent_at, limits=limits, sanitize=sanitize)
            for n in natives
        ]
        held.append((raw, value, natives, rows))
        del events, raw, value, payload, natives, rows
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / (20 * batch)


def memory_bound(pre_spike_mib: float, settings: Settings, per_event: float, connections: int) -> float:
    """The most the API may hold during the spike, in MiB: its pre-spike RSS, plus every row the sink may
    hold (MAX_QUEUED_ROWS waiting + one group of GROUP_COMMIT_MAX_ROWS being written) at the bytes a
    waiting request holds per event, plus uvicorn's read buffer of each connection (64 KiB, its
    flow-control mark)."""
    rows = settings.max_queued_rows + settings.group_commit_max_rows
    return pre_spike_mib + (rows * per_event + connections * UVICORN_READ_BUFFER) / 2**20


# --------------------------------------------------------------------------- run


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RssSampler:
    """The API process group's RSS every SAMPLE_SECONDS, on a thread (the event loop may be busy)."""

    def __init__(self, pgid: int):
        self.pgid = pgid
        self.began = time.monotonic()
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self.began, harness.group_rss_mib(self.pgid)))
            self._stop.wait(SAMPLE_SECONDS)

    def between(self, t0: float, t1: float) -> list[float]:
        return [rss for t, rss in self.samples if t0 <= t <= t1]

    def now(self) -> float:
        return time.monotonic() - self.began

    def latest(self) -> float:
        return self.samples[-1][1] if self.samples else 0.0


def run() -> dict[str, Any]:
    policy = RETRY_POLICIES.get(POLICY)
    if policy is None:
        raise harness.BenchFailure(f"BENCH_SPIKE_POLICY must be one of {sorted(RETRY_POLICIES)}, got {POLICY!r}")
    server_settings = Settings.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="etspike-"))
    try:
        with harness.throwaway_postgres() as pg:
            url = pg.url()
            migrate(url, 90, 7)
            machine = harness.machine_info(url)
            with harness.serving("eventtrack", "ingest_api.asgi:app", url, workdir) as server:
                host, port = "127.0.0.1", server.port
                meter = harness.CpuMeter(server.pgid, harness.postmaster_pid(pg.pgdata))
                with RssSampler(server.pgid) as rss:
                    result = uvloop.run(_phases(host, port, url, policy, meter, rss))
                    time.sleep(3 * SAMPLE_SECONDS)
                    result["rss_after_mib"] = round(rss.latest(), 1)
                    result["rss_samples"] = [(round(t, 1), round(v, 1)) for t, v in rss.samples]
                server_log = server.log_path.read_text(errors="replace")
            result["verification"] = check_exactly_once(url, result.pop("_spike"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["server_log"] = {level: log_lines(server_log, level) for level in ("error", "warning")}
    result["machine"] = machine
    result["config"] = {
        "spike_seconds": SPIKE_SECONDS,
        "factor": FACTOR,
        "clients": CLIENTS,
        "batch": BATCH,
        "gzip": GZIP,
        "policy": policy.name,
        "policy_source": policy.source,
        "endpoint": "POST " + BATCH_PATH + " (PostHog batch)",
        "max_queued_rows": server_settings.max_queued_rows,
        "group_commit_max_rows": server_settings.group_commit_max_rows,
        "commit_timeout_seconds": server_settings.commit_timeout_seconds,
        "retry_after_seconds": server_settings.retry_after_seconds,
    }
    per_event = held_bytes_per_event(server_settings, BATCH)
    bound = memory_bound(result["rss_pre_spike_mib"], server_settings, per_event, CLIENTS)
    result["memory"] = {
        "held_bytes_per_queued_event": round(per_event),
        "bound_mib": round(bound, 1),
        "bound_rule": memory_bound.__doc__.split("\n\n")[0].replace("\n    ", " "),
        "ok": result["rss_peak_mib"] <= bound,
    }
    return result


async def _phases(host: str, port: int, url: str, policy: RetryPolicy, meter: harness.CpuMeter, rss: RssSampler):
    loop = asyncio.get_running_loop()
    out: dict[str, Any] = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds")}
    if CAPACITY:
        out["capacity"] = {"events_per_s": float(CAPACITY), "given": True}
        harness.log(f"capacity given: {CAPACITY} events/s")
    else:
        harness.log(f"capacity: {CAPACITY_CONNECTIONS} connections, batches of {BATCH}, {CAPACITY_SECONDS} s")
        cpu0, proc0, t0 = meter.sample(), time.process_time(), time.monotonic()
        out["capacity"] = await measure_capacity(host, port, CAPACITY_CONNECTIONS, CAPACITY_SECONDS, BATCH)
        wall = time.monotonic() - t0
        out["capacity"]["cpu_percent"] = harness.cpu_percent(
            cpu0, meter.sample(), wall, client=time.process_time() - proc0
        )
        harness.log(f"capacity: {out['capacity']['events_per_s']:,.0f} events/s ({out['capacity']['statuses']})")
    await loop.run_in_executor(None, harness.settled_count, url)
    await loop.run_in_executor(None, harness.reset_tables, url)
    await asyncio.sleep(3)
    pre = rss.between(rss.now() - 2.5, rss.now())
    out["rss_pre_spike_mib"] = round(statistics.median(pre), 1)
    capacity = out["capacity"]["events_per_s"]
    rate = FACTOR * capacity
    spike = Spike(host, port, rate, SPIKE_SECONDS, CLIENTS, BATCH, policy, gzipped=GZIP)
    harness.log(
        f"spike: {rate:,.0f} events/s ({FACTOR}x) for {SPIKE_SECONDS} s into {CLIENTS} clients' queues, "
        f"batches of {BATCH}, {policy.name} retry policy; then the drain"
    )
    last_log = [0.0]

    def on_sample(t: float) -> dict[str, Any]:
        mib = rss.latest()
        if t - last_log[0] >= 5:
            last_log[0] = t
            tally = spike.tally
            harness.log(
                f"  t={t:5.1f} s backlog {spike.backlog(loop.time()):>9,} acked {tally.acked:>9,} "
                f"answers {dict(sorted(tally.statuses.items()))} RSS {mib:.0f} MiB"
            )
        return {"rss_mib": round(mib, 1)}

    spike_began = rss.now()
    cpu0, proc0, t0 = meter.sample(), time.process_time(), time.monotonic()
    await spike.run(on_sample)
    wall = time.monotonic() - t0
    cpu = harness.cpu_percent(cpu0, meter.sample(), wall, client=time.process_time() - proc0)
    tally = spike.tally
    spike_end = spike.start + SPIKE_SECONDS
    during = rss.between(spike_began, rss.now())
    out["_spike"] = spike
    out["spike"] = {
        "rate_events_per_s": round(rate, 1),
        "events_created": tally.created,
        "events_acked": tally.acked,
        "drained": spike.drained,
        "drain_seconds": round(tally.last_ack - spike_end, 2) if tally.last_ack else None,
        "ideal_drain_seconds": round(max(0.0, tally.created / capacity - SPIKE_SECONDS), 1),
        "seconds_start_to_last_200": round(tally.last_ack - spike.start, 2) if tally.last_ack else None,
        "backlog_at_spike_end": _at(spike.samples, SPIKE_SECONDS, "backlog"),
        "peak_backlog": max((s["backlog"] for s in spike.samples), default=0),
        "answers": dict(sorted(tally.statuses.items())),
        "unexpected_answers": tally.unexpected,
        "resends_after_timeouts_or_connection_errors": tally.resends_after_errors,
        "retries_after_retry_after": tally.retries_honoured,
        "shortest_wait_beyond_retry_after_s": (
            round(tally.shortest_wait_over_retry_after, 4) if tally.shortest_wait_over_retry_after is not None else None
        ),
        "longest_failure_streak": tally.longest_failure_streak,
        "stock_sdk_queue_drops": tally.stock_sdk_drops,
        "stock_sdk_events_dropped": tally.stock_sdk_events_dropped,
        "latency_200_s": latencies(tally.request_seconds),
        "latency_refusals_s": latencies(tally.refusal_seconds),
        "server_metrics": await loop.run_in_executor(None, server_metrics, host, port),
        "cpu_percent": cpu,
        "wall_seconds": round(wall, 1),
        "samples": spike.samples,
    }
    out["rss_peak_mib"] = round(max(during, default=0.0), 1)
    out["rss_median_during_mib"] = round(statistics.median(during), 1) if during else None
    return out


def latencies(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": _round(percentile(values, 0.5)),
        "p99": _round(percentile(values, 0.99)),
        "max": _round(max(values, default=None)),
    }


SERVER_METRICS = (
    "eventtrack_events_accepted_total",
    "eventtrack_events_deduplicated_total",
    "eventtrack_sink_overloaded_total",
    "eventtrack_batch_size_events_count",
    "eventtrack_group_commit_rows_count",
    "eventtrack_group_commit_rows_sum",
    "eventtrack_group_commit_seconds_sum",
    "eventtrack_database_errors_total",
)


def server_metrics(host: str, port: int) -> dict[str, float]:
    """The service's own counters (GET /metrics): events written twice (deduplicated), refusals, commits,
    batches parsed."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in SERVER_METRICS:
            values[name.removeprefix("eventtrack_")] = float(value)
    return values


def _at(samples: list[dict[str, Any]], t: float, key: str) -> Any:
    before = [s for s in samples if s["t"] <= t]
    return before[-1][key] if before else None


def log_lines(text: str, level: str) -> dict[str, Any]:
    """How many lines of the server's JSON log are at `level`, and the first few."""
    lines = [line for line in text.splitlines() if f'"level":"{level}"' in line]
    return {"count": len(lines), "first": [line[:300] for line in lines[:5]]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def failures(result: dict[str, Any]) -> list[str]:
    spike, verification, memory = result["spike"], result["verification"], result["memory"]
    problems = []
    if not spike["drained"]:
        problems.append(f"the queues did not drain within {DRAIN_LIMIT} s after the spike")
    if not verification["ok"]:
        problems.append(f"events not stored exactly once: {verification}")
    if spike["unexpected_answers"]:
        problems.append(f"answers other than 200 or 503/429 with Retry-After: {spike['unexpected_answers'][:5]}")
    unanswered = {k: v for k, v in spike["answers"].items() if k in ("timeout", "connection_error")}
    if unanswered:
        problems.append(f"requests not answered within the SDK's timeout, or connections lost: {unanswered}")
    if not memory["ok"]:
        problems.append(f"RSS peak {result['rss_peak_mib']} MiB above the bound {memory['bound_mib']} MiB")
    return problems


def summary(result: dict[str, Any]) -> str:
    s, v, m, cfg = result["spike"], result["verification"], result["memory"], result["config"]
    cap = result["capacity"]
    rss_curve = "  ".join(f"{x['t']:.0f}s:{x['rss_mib']:.0f}" for x in s["samples"][:: max(1, len(s["samples"]) // 16)])
    backlog_curve = "  ".join(
        f"{x['t']:.0f}s:{x['backlog'] / 1000:.0f}k" for x in s["samples"][:: max(1, len(s["samples"]) // 16)]
    )
    return "\n".join(
        [
            "",
            f"Spike benchmark ({result['timestamp']}; {result['machine']['cpus']} CPUs, load average at start "
            f"{result['machine']['loadavg_at_start'][0]:.2f}; MAX_QUEUED_ROWS {cfg['max_queued_rows']}, "
            f"COMMIT_TIMEOUT_SECONDS {cfg['commit_timeout_seconds']}, Retry-After {cfg['retry_after_seconds']} s)",
            f"capacity C: {cap['events_per_s']:,.0f} events/s" + (" (given)" if cap.get("given") else " (measured)"),
            f"spike: {s['rate_events_per_s']:,.0f} events/s ({cfg['factor']}x C) for {cfg['spike_seconds']} s into "
            f"{cfg['clients']} clients, batches of {cfg['batch']}, {cfg['policy']} policy: "
            f"{s['events_created']:,} events created",
            f"drain: {s['drain_seconds']} s from the end of the spike to the last 200 (ideal at C: "
            f"{s['ideal_drain_seconds']} s); peak backlog {s['peak_backlog']:,} events",
            f"answers: {s['answers']}; resends after timeouts/connection errors "
            f"{s['resends_after_timeouts_or_connection_errors']}; retries after Retry-After {s['retries_after_retry_after']}"
            f" (shortest wait beyond Retry-After {s['shortest_wait_beyond_retry_after_s']} s)",
            f"a stock SDK (maxRetries) would have dropped its queue {s['stock_sdk_queue_drops']} times, "
            f"{s['stock_sdk_events_dropped']:,} events; longest failure streak {s['longest_failure_streak']}",
            f"latency: 200 p50 {s['latency_200_s']['p50']} s, p99 {s['latency_200_s']['p99']} s; refusals p50 "
            f"{s['latency_refusals_s']['p50']} s, p99 {s['latency_refusals_s']['p99']} s; server: {s['server_metrics']}",
            f"CPU (% of a core) during spike+drain: {s['cpu_percent']}",
            f"stored: {v['stored']:,} rows, {v['distinct_uuids']:,} distinct uuids, of {v['created']:,} created: "
            f"{'exactly once' if v['ok'] else 'NOT EXACTLY ONCE'}",
            f"RSS: pre-spike {result['rss_pre_spike_mib']} MiB, median during {result['rss_median_during_mib']} MiB,"
            f" peak {result['rss_peak_mib']} MiB, after {result['rss_after_mib']} MiB; bound {m['bound_mib']} MiB"
            f" ({m['held_bytes_per_queued_event']} bytes held per queued event): {'ok' if m['ok'] else 'EXCEEDED'}",
            f"RSS MiB: {rss_curve}",
            f"backlog: {backlog_curve}",
        ]
    )


def main() -> int:
    result = run()
    return harness.report_checked(result, "spike", failures(result), summary(result))


if __name__ == "__main__":
    harness.run_benchmark(main, "server and Postgres")
