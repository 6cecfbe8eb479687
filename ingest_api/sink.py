"""The group-commit writer: the only code that writes events on the hot path.

Requests hand their rows to `EventSink.write()` and wait. One writer task
takes everything that is waiting, writes it in one transaction (COPY into a
temporary table, then dedup and insert), commits, and only then wakes the
requests: a 200 always means committed. While one transaction is in flight
the next group gathers, so throughput grows with concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, timedelta

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from eventtrack.errors import DatabaseUnavailable
from ingest_api.admission import Admission
from ingest_api.metrics import Metrics
from ingest_api.validation import EventRow

log = logging.getLogger(__name__)

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
COPY_TYPES = (
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

_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS incoming_events ("
    + ", ".join(f'"{c}" {t}' for c, t in zip(EVENT_COLUMNS, COPY_TYPES))
    + ") ON COMMIT DELETE ROWS"
)
# Dedup: a uuid already in event_uuids is skipped, whatever its timestamp.
# DISTINCT ON drops repeats inside the same group.
_INSERT_NEW = f"""
WITH fresh AS (
    INSERT INTO event_uuids (uuid, received_at)
    SELECT uuid, received_at FROM incoming_events
    ON CONFLICT (uuid) DO NOTHING
    RETURNING uuid
)
INSERT INTO events ({_COLS})
SELECT DISTINCT ON (i.uuid) {", ".join(f'i."{c}"' for c in EVENT_COLUMNS)}
FROM incoming_events i JOIN fresh USING (uuid)
ORDER BY i.uuid
"""


# A write in flight this long makes the writer check that the database still takes connections.
LIVENESS_CHECK_SECONDS = 0.5


class SinkOverloaded(DatabaseUnavailable):
    """Too much is already waiting for the database: refused before queueing."""


class JsonbBytes(bytes):
    """Already-serialized JSON, copied as jsonb without parsing it again in Python."""


class _JsonbBytesBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj  # jsonb binary format: version byte, then the text


def register_adapters(conn: psycopg.AsyncConnection | psycopg.Connection) -> None:
    _JsonbBytesBinaryDumper.oid = conn.adapters.types["jsonb"].oid
    conn.adapters.register_dumper(JsonbBytes, _JsonbBytesBinaryDumper)


def copy_row(row: EventRow) -> tuple:
    return (
        row.uuid,
        row.event_type,
        row.distinct_id,
        JsonbBytes(row.properties_json),
        row.device_id,
        row.session_id,
        row.app_version,
        row.os_name,
        row.os_version,
        row.timestamp,
        row.client_timestamp,
        row.sent_at,
        row.received_at,
    )


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


class EventSink:
    def __init__(
        self,
        database_url: str,
        *,
        max_rows: int,
        commit_timeout: float,
        connect_timeout: float,
        max_queued_rows: int = 200_000,
        metrics: Metrics | None = None,
    ):
        self._url = database_url
        # Backpressure: past this many waiting rows (or more than the writer commits well within the
        # commit timeout) new writes are refused at once (503) instead of letting memory grow and
        # requests time out while the database falls behind.
        self._admission = Admission(max_queued_rows, commit_timeout)
        self._queued_rows = 0
        self._metrics = metrics or Metrics()
        self._max_rows = max_rows
        self._commit_timeout = commit_timeout
        self._connect_timeout = connect_timeout
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._conn: psycopg.AsyncConnection | None = None
        self._task: asyncio.Task | None = None
        self._known_days: set[date] = set()
        self._abandoned: set[asyncio.Task] = set()  # writes given up on, until they are cleaned up
        self._metrics.track_queue(self._queue.qsize)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-sink")

    async def stop(self) -> None:
        """Writes what is queued, then closes."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._abandoned):
            task.cancel()  # psycopg then gives up on asking the server to cancel and closes the connection
        await asyncio.gather(*self._abandoned, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    def refuse_if_overloaded(self, size: int | None = None) -> None:
        """Raises SinkOverloaded when a write of `size` rows (None: a request not read yet) may not wait."""
        if not self._admission.admits(self._queued_rows, size):
            self._metrics.overloaded.inc()
            raise SinkOverloaded(f"{self._queued_rows} rows already waiting")

    async def write(self, events: Sequence[EventRow], rejects: Sequence[RejectRow] = ()) -> None:
        """Returns once the rows are committed; raises DatabaseUnavailable otherwise."""
        size = len(events) + len(rejects)
        self._admission.requested(size)
        self.refuse_if_overloaded(size)
        pending = _Pending(events, rejects)
        self._queue.put_nowait(pending)
        self._queued_rows += size
        try:
            return await asyncio.wait_for(asyncio.shield(pending.done), self._commit_timeout)
        except TimeoutError:
            # The rows may still commit later; the client retries and dedup absorbs it.
            raise DatabaseUnavailable("commit timed out") from None

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            rows = len(group[0].events)
            while rows < self._max_rows and not self._queue.empty():
                item = self._queue.get_nowait()
                group.append(item)
                rows += len(item.events)
            self._queued_rows -= sum(len(item.events) + len(item.rejects) for item in group)
            try:
                await self._commit_group(group)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _commit_group(self, group: list[_Pending]) -> None:
        metrics = self._metrics
        began = time.perf_counter()
        try:
            inserted = await self._write_while_database_up(group)
        except (psycopg.OperationalError, OSError, TimeoutError) as exc:
            metrics.database_errors.inc()
            log.warning("database unavailable, %d requests refused: %s", len(group), exc)
            await self._refuse_group(group, exc)
            return
        except psycopg.Error:
            # Should not happen after validation (a partition dropped under us is the
            # known case); write each request alone so one cannot fail the others.
            metrics.database_errors.inc()
            log.exception("group write failed; retrying requests one by one")
            await self._rollback()
            self.forget_partitions()
            if len(group) > 1:
                for item in group:
                    await self._commit_group([item])
                return
            _settle(group[0], exc=DatabaseUnavailable("write failed"))
            return
        except Exception as exc:  # a bug must not kill the writer task and with it every later request
            log.exception("unexpected error in the event writer")
            await self._refuse_group(group, exc)
            return
        rows = sum(len(item.events) for item in group)
        written = rows + sum(len(item.rejects) for item in group)
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

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, connect_timeout=max(1, int(self._connect_timeout))
            )
            register_adapters(self._conn)
            await self._conn.execute(_CREATE_STAGING)
            await self._conn.commit()
        return self._conn

    async def _write_while_database_up(self, group: list[_Pending]) -> int:
        """`_write`, given up as soon as the database is known to be down while it is in flight.

        The connection of a write in flight can stay open after the server went down (a backend that
        does not exit at once on an immediate shutdown, a server host gone from the network): the
        write would hold its requests until their commit timeout, and every later group behind them.
        """
        write = asyncio.ensure_future(self._write(group))
        while True:
            done, _ = await asyncio.wait((write,), timeout=LIVENESS_CHECK_SECONDS)
            if done:
                return write.result()
            if not await self._takes_connections():
                break
        # Not committed as far as we know: the requests get 503 and their retries are deduplicated.
        conn, self._conn = self._conn, None
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

    async def _write(self, group: list[_Pending]) -> int:
        """Writes the group in one transaction; returns how many events were new (not duplicates)."""
        conn = await asyncio.wait_for(self._connection(), self._connect_timeout + 1)
        events = [row for item in group for row in item.events]
        rejects = [r for item in group for r in item.rejects]
        inserted = 0
        async with conn.transaction():
            if events:
                await self._ensure_partitions(conn, {e.timestamp.date() for e in events})
                async with conn.cursor() as cur:
                    async with cur.copy(f"COPY incoming_events ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(COPY_TYPES)
                        for row in events:
                            await copy.write_row(copy_row(row))
                    await cur.execute(_INSERT_NEW)
                    inserted = cur.rowcount
            if rejects:
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

    async def _refuse_group(self, group: Sequence[_Pending], exc: BaseException) -> None:
        """The connection is in an unknown state: start afresh, and answer each request of the group 503."""
        await self._drop_connection()
        for item in group:
            _settle(item, exc=DatabaseUnavailable(str(exc)))

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error, OSError):  # already broken
                await conn.close()

    async def _rollback(self) -> None:
        if self._conn is not None and not self._conn.closed:
            try:
                await self._conn.rollback()
            except psycopg.Error:
                await self._drop_connection()


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


def _settle(item: _Pending, *, exc: Exception | None = None) -> None:
    if item.done.done():
        return
    if exc is not None:
        item.done.set_exception(exc)
        # Nobody may await a timed-out request's future; mark it retrieved.
        item.done.exception()
    else:
        item.done.set_result(None)
