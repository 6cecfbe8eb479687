"""The group-commit writer: the only code that writes events on the hot path.

Requests hand their rows to `EventSink.write()` and wait. A writer task takes
everything that is waiting, writes it in one statement (its own transaction:
dedup and insert together), and only then wakes the requests: a 200 always
means committed. While one statement is in flight the next group gathers (and
another writer may write it), so throughput grows with concurrency.

The group travels as one JSON document serialized by orjson in C (the rows are
dataclasses) and is unpacked by Postgres's `json_to_recordset`: one round trip
per group, where a COPY into a staging table inside a transaction took five
(BEGIN, COPY and its end, INSERT, COMMIT), each a wait for this event loop.
docs/performance.md has both measured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, timedelta

import orjson
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from eventtrack.errors import DatabaseUnavailable
from ingest_api.admission import Admission
from ingest_api.metrics import Metrics
from ingest_api.validation import EventRow

log = logging.getLogger(__name__)

# The columns of `events` the sink writes, with their types, in EventRow's order (`properties` is
# EventRow.properties_json: already JSON text).
EVENT_COLUMNS = (
    "uuid",
    "event_type",
    "distinct_id",
    "properties",
    "device_id",
    "session_id",
    "app_version",
    "os_name",
    "os_version",
    "timestamp",
    "client_timestamp",
    "sent_at",
    "received_at",
)
COLUMN_TYPES = (
    "uuid",
    "text",
    "text",
    "jsonb",
    "text",
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
)
_COLS = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
_RECORD = ", ".join(
    f'"{"properties_json" if c == "properties" else c}" {t}' for c, t in zip(EVENT_COLUMNS, COLUMN_TYPES)
)
_SELECT = ", ".join('"properties_json"' if c == "properties" else f'"{c}"' for c in EVENT_COLUMNS)


# Dedup: a uuid already in event_uuids is skipped, whatever its timestamp (repeats inside the group
# were dropped before: see `_distinct`). Writers (several per process, or API workers) inserting the same
# uuids wait for each other's commit; in uuid order, so that they cannot deadlock.
# One statement, its own transaction: a 200 after it returns means the events and their uuids are
# committed together. One round trip: a COPY into a staging table costs Postgres ~25% less per row for
# large groups, but its five round trips each wait for this event loop, which under a spike of thousands
# of clients is slow to come round (groups then took seconds: docs/performance.md).
_INSERT_GROUP = f"""
WITH incoming AS (
    SELECT * FROM json_to_recordset(%s) AS t({_RECORD})
), fresh AS (
    INSERT INTO event_uuids (uuid, received_at)
    SELECT uuid, received_at FROM incoming ORDER BY uuid
    ON CONFLICT (uuid) DO NOTHING
    RETURNING uuid
)
INSERT INTO events ({_COLS})
SELECT {_SELECT} FROM incoming JOIN fresh USING (uuid)
"""


# A write in flight this long makes the writer check that the database still takes connections.
LIVENESS_CHECK_SECONDS = 0.5


class SinkOverloaded(DatabaseUnavailable):
    """Too much is already waiting for the database: refused before queueing."""


class JsonText(bytes):
    """JSON already serialized, sent as a `json` parameter without decoding and encoding it again."""


class _JsonTextDumper(Dumper):
    format = Format.TEXT

    def dump(self, obj: bytes) -> bytes:
        return obj


def _register_adapters(conn: psycopg.AsyncConnection | psycopg.Connection) -> None:
    _JsonTextDumper.oid = conn.adapters.types["json"].oid
    conn.adapters.register_dumper(JsonText, _JsonTextDumper)


def _fragment(value: object) -> orjson.Fragment:
    """orjson's `default` for EventRow: its properties are JSON text already, embedded as they are."""
    if isinstance(value, bytes):
        return orjson.Fragment(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def group_json(events: Sequence[EventRow]) -> JsonText:
    """The group as the JSON array `_INSERT_GROUP` reads (uuids, times and NULLs as orjson writes them)."""
    return JsonText(orjson.dumps(events, default=_fragment))


def _distinct(events: list[EventRow]) -> list[EventRow]:
    """The first of each uuid: a resend can land in the same group as the original."""
    seen: set = set()
    out = []
    for row in events:
        if row.uuid not in seen:
            seen.add(row.uuid)
            out.append(row)
    return out


@dataclass
class RejectRow:
    received_at: object
    endpoint: str
    reason: str
    detail: str
    fields: bytes  # JSON
    event_index: int | None
    payload: bytes
    payload_bytes: int
    payload_truncated: bool
    remote_addr: str | None


@dataclass
class _Pending:
    events: Sequence[EventRow]
    rejects: Sequence[RejectRow]
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def size(self) -> int:
        return len(self.events) + len(self.rejects)


class EventSink:
    def __init__(
        self,
        database_url: str,
        *,
        max_rows: int,
        commit_timeout: float,
        connect_timeout: float,
        max_queued_rows: int = 200_000,
        writers: int = 2,
        metrics: Metrics | None = None,
    ):
        self._url = database_url
        writers = max(1, writers)
        # Backpressure: past this many waiting rows (or more than the writer commits well within the
        # commit timeout) new writes are refused at once (503) instead of letting memory grow and
        # requests time out while the database falls behind.
        self._admission = Admission(max_queued_rows, commit_timeout, writers)
        self._queued_rows = 0
        self._metrics = metrics or Metrics()
        self._max_rows = max_rows
        self._commit_timeout = commit_timeout
        self._connect_timeout = connect_timeout
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # Writers, each on its own connection: while one group waits on a round trip (which waits for
        # this loop) or its commit, another is being written. Two carry a third more batches than one
        # on this 2-core machine; each adds a little CPU per event (smaller groups). docs/performance.md.
        self._slots = [_Slot() for _ in range(writers)]
        self._tasks: list[asyncio.Task] = []
        self._known_days: set[date] = set()
        self._abandoned: set[asyncio.Task] = set()  # writes given up on, until they are cleaned up
        self._metrics.track_queue(self._queue.qsize)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(slot), name=f"event-sink-{i}") for i, slot in enumerate(self._slots)
        ]

    async def stop(self) -> None:
        """Writes what is queued, then closes."""
        if self._tasks:
            await self._queue.join()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for task in list(self._abandoned):
            task.cancel()  # psycopg then gives up on asking the server to cancel and closes the connection
        await asyncio.gather(*self._abandoned, return_exceptions=True)
        for slot in self._slots:
            if slot.conn is not None:
                await slot.conn.close()

    def refuse_if_overloaded(self, size: int | None = None) -> None:
        """Raises SinkOverloaded when a write of `size` rows (None: a request not read yet) may not wait."""
        if not self._admission.admits(self._queued_rows, size):
            self._metrics.overloaded.inc()
            raise SinkOverloaded(f"{self._queued_rows} rows already waiting")

    async def write(self, events: Sequence[EventRow], rejects: Sequence[RejectRow] = ()) -> None:
        """Returns once the rows are committed; raises DatabaseUnavailable otherwise."""
        pending = _Pending(events, rejects)
        self._admission.requested(pending.size)
        self.refuse_if_overloaded(pending.size)
        self._queue.put_nowait(pending)
        self._queued_rows += pending.size
        # A timer on the future rather than wait_for(shield(...)): a third of the CPU, and the writer
        # still finds the future (settled by the timer: it then leaves it alone).
        timer = asyncio.get_running_loop().call_later(self._commit_timeout, _time_out, pending)
        try:
            await pending.done
        finally:
            timer.cancel()

    async def _run(self, slot: _Slot) -> None:
        while True:
            group = [await self._queue.get()]
            rows = len(group[0].events)
            while rows < self._max_rows and not self._queue.empty():
                item = self._queue.get_nowait()
                group.append(item)
                rows += len(item.events)
            self._queued_rows -= sum(item.size for item in group)
            try:
                await self._commit_group(slot, group)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _commit_group(self, slot: _Slot, group: list[_Pending]) -> None:
        metrics = self._metrics
        began = time.perf_counter()
        try:
            inserted = await self._write_while_database_up(slot, group)
        except (psycopg.OperationalError, OSError, TimeoutError) as exc:
            metrics.database_errors.inc()
            log.warning("database unavailable, %d requests refused: %s", len(group), exc)
            await self._refuse_group(slot, group, exc)
            return
        except psycopg.Error:
            # Should not happen after validation (a partition dropped under us is the
            # known case); write each request alone so one cannot fail the others.
            metrics.database_errors.inc()
            log.exception("group write failed; retrying requests one by one")
            await self._rollback(slot)
            self.forget_partitions()
            if len(group) > 1:
                for item in group:
                    await self._commit_group(slot, [item])
                return
            _settle(group[0], exc=DatabaseUnavailable("write failed"))
            return
        except Exception as exc:  # a bug must not kill the writer task and with it every later request
            log.exception("unexpected error in the event writer")
            await self._refuse_group(slot, group, exc)
            return
        rows = sum(len(item.events) for item in group)
        written = sum(item.size for item in group)
        seconds = time.perf_counter() - began
        self._admission.committed(written, seconds)
        metrics.group_commit_seconds.observe(seconds)
        metrics.group_commit_rows.observe(written)
        metrics.events_accepted.inc(rows)
        metrics.events_deduplicated.inc(rows - inserted)
        for item in group:
            for reject in item.rejects:
                metrics.events_rejected.labels(reject.reason).inc()
            _settle(item)

    async def _connection(self, slot: _Slot) -> psycopg.AsyncConnection:
        conn = slot.conn
        if conn is None or conn.closed or conn.broken:
            # Autocommit: a group without dead letters is one statement, its own transaction.
            conn = slot.conn = await psycopg.AsyncConnection.connect(
                self._url, connect_timeout=max(1, int(self._connect_timeout)), autocommit=True
            )
            _register_adapters(conn)
        return conn

    async def _write_while_database_up(self, slot: _Slot, group: list[_Pending]) -> int:
        """`_write`, given up as soon as the database is known to be down while it is in flight.

        The connection of a write in flight can stay open after the server went down (a backend that
        does not exit at once on an immediate shutdown, a server host gone from the network): the
        write would hold its requests until their commit timeout, and every later group behind them.
        """
        write = asyncio.ensure_future(self._write(slot, group))
        while True:
            done, _ = await asyncio.wait((write,), timeout=LIVENESS_CHECK_SECONDS)
            if done:
                return write.result()
            if not await self._takes_connections():
                break
        # Not committed as far as we know: the requests get 503 and their retries are deduplicated.
        conn, slot.conn = slot.conn, None
        cleanup = asyncio.create_task(_abandon(write, conn))
        self._abandoned.add(cleanup)
        cleanup.add_done_callback(self._abandoned.discard)
        raise psycopg.OperationalError("the database went down while a write was in flight")

    async def _takes_connections(self) -> bool:
        try:
            conn = await asyncio.wait_for(psycopg.AsyncConnection.connect(self._url), min(1.0, self._connect_timeout))
        except (psycopg.OperationalError, OSError, TimeoutError):
            return False
        await conn.close()
        return True

    async def _write(self, slot: _Slot, group: list[_Pending]) -> int:
        """Writes the group in one transaction; returns how many events were new (not duplicates)."""
        conn = await asyncio.wait_for(self._connection(slot), self._connect_timeout + 1)
        events = [row for item in group for row in item.events]
        rejects = [r for item in group for r in item.rejects]
        if events:
            await self._ensure_partitions(conn, {e.timestamp.date() for e in events})
        if not rejects:
            return await _insert_events(conn, events)
        async with conn.transaction():  # dead letters (rare) commit with the group's events or not at all
            inserted = await _insert_events(conn, events)
            await _insert_rejects(conn, rejects)
        return inserted

    async def _ensure_partitions(self, conn: psycopg.AsyncConnection, days: set[date]) -> None:
        missing = days - self._known_days
        if not missing:
            return
        await conn.execute("SELECT ensure_event_partitions(%s, %s)", (min(missing), max(missing)))
        self._known_days |= {min(missing) + timedelta(days=i) for i in range((max(missing) - min(missing)).days + 1)}

    def forget_partitions(self) -> None:
        """Called when retention may have dropped partitions this process had seen."""
        self._known_days.clear()

    async def _refuse_group(self, slot: _Slot, group: Sequence[_Pending], exc: BaseException) -> None:
        """The connection is in an unknown state: start afresh, and answer each request of the group 503."""
        await _drop_connection(slot)
        for item in group:
            _settle(item, exc=DatabaseUnavailable(str(exc)))

    async def _rollback(self, slot: _Slot) -> None:
        if slot.conn is not None and not slot.conn.closed:
            try:
                await slot.conn.rollback()
            except psycopg.Error:
                await _drop_connection(slot)


class _Slot:
    """One writer's connection (None until connected, and after it was given up)."""

    __slots__ = ("conn",)

    def __init__(self) -> None:
        self.conn: psycopg.AsyncConnection | None = None


async def _drop_connection(slot: _Slot) -> None:
    conn, slot.conn = slot.conn, None
    if conn is not None:
        with suppress(psycopg.Error, OSError):  # already broken
            await conn.close()


async def _insert_events(conn: psycopg.AsyncConnection, events: list[EventRow]) -> int:
    """Inserts the group's new events (in the caller's transaction, if any); returns how many were new."""
    if not events:
        return 0
    cur = await conn.execute(_INSERT_GROUP, (group_json(_distinct(events)),), prepare=True)
    return cur.rowcount


async def _insert_rejects(conn: psycopg.AsyncConnection, rejects: Sequence[RejectRow]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO rejected_events (received_at, endpoint, reason, detail, fields, event_index,"
            " payload, payload_bytes, payload_truncated, remote_addr)"
            " VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s)",
            [
                (
                    r.received_at,
                    r.endpoint,
                    r.reason,
                    r.detail,
                    r.fields.decode(),
                    r.event_index,
                    r.payload,
                    r.payload_bytes,
                    r.payload_truncated,
                    r.remote_addr,
                )
                for r in rejects
            ],
        )


async def _abandon(write: asyncio.Future, conn: psycopg.AsyncConnection | None) -> None:
    """Cancels a write given up on and closes its connection. psycopg first asks the server to
    cancel the query and waits for it (up to 5 + 5 s against a dead server): in the background."""
    write.cancel()
    with suppress(BaseException):  # cancelled, or the connection's error: either way it is over
        await write
    if conn is not None:
        await conn.close()


def _time_out(item: _Pending) -> None:
    # The rows may still commit later; the client retries and dedup absorbs it.
    _settle(item, exc=DatabaseUnavailable("commit timed out"))


def _settle(item: _Pending, *, exc: Exception | None = None) -> None:
    if item.done.done():
        return
    if exc is not None:
        item.done.set_exception(exc)
        # Nobody may await a timed-out request's future; mark it retrieved.
        item.done.exception()
    else:
        item.done.set_result(None)
