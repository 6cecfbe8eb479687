"""The delivery worker (`eventtrack deliver`, supervised by `eventtrack up`): sends each active destination
its events in arrival order, at least once.

- One deliverer per destination across processes and machines: a session advisory lock per destination,
  held on one connection of this process. If the process dies, the connection closes and the lock goes
  with it; another worker takes the destination over within a scan.
- A destination's cursor moves only after its receiver answered 2xx (compare-and-set on the cursor and
  the replay generation). A crash between the answer and the update re-sends that batch: receivers drop
  repeats by event uuid (docs/operations.md).
- A batch is read from `events` again before every attempt: an erasure in the meantime reaches it.
- Events are read up to the arrival horizon (eventtrack/streaming/horizon.py) only: none is skipped when
  transactions commit out of `ingest_seq` order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime

import httpx
import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from eventtrack.database import sqlalchemy_url
from eventtrack.settings import Settings
from eventtrack.streaming import destinations as store
from eventtrack.streaming.horizon import HorizonWatch
from eventtrack.streaming.signing import HEADER, header_value
from eventtrack.streaming.tail import events_after, summarize_arrivals

log = logging.getLogger("eventtrack.deliver")

USER_AGENT = "eventtrack-webhooks/1"
RESPONSE_KEPT_BYTES = 4096
# A receiver's answer that means "try again later" rather than "never".
_RETRYABLE_4XX = (408, 429)
# How long a destination's loop waits for something to change before looking at its row again (a PATCH,
# a replay, a pause): bounds how late it notices.
_RECHECK_SECONDS = 1.0
# How often the BRIN ranges written since are summarized while this worker delivers (eventtrack/streaming/tail.py),
# and how long it waits for a partition another session is summarizing or vacuuming.
_SUMMARIZE_SECONDS = 1.0
_SUMMARIZE_LOCK_TIMEOUT = "100ms"


def batch_body(destination_id: int, batch_id: str, events: list[str]) -> bytes:
    head = f'{{"destination_id":{destination_id},"batch_id":"{batch_id}","events":['.encode()
    return head + ",".join(events).encode() + b"]}"


class Deliverer:
    def __init__(self, settings: Settings, engine: AsyncEngine, client: httpx.AsyncClient):
        self._settings = settings
        self._engine = engine
        self._client = client
        self.horizon = HorizonWatch(engine, settings.stream_poll_seconds)
        self._tasks: dict[int, asyncio.Task] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping`: takes the destinations no other worker holds and delivers to them."""
        summarizer = asyncio.create_task(self._summarize(stopping))
        try:
            await self._run(stopping)
        finally:
            summarizer.cancel()
            await asyncio.gather(summarizer, return_exceptions=True)

    async def _run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._settings.require_database_url(), autocommit=True
                ) as locks:
                    await self._hold(locks, stopping)
            except (psycopg.Error, OSError) as err:
                log.warning("delivery worker lost its database connection (%s); retrying", err)
            finally:
                await self._drop_all()
            if not stopping.is_set():
                await _wait(stopping, self._settings.delivery_scan_seconds)
        await self.horizon.stop()

    async def _hold(self, locks: psycopg.AsyncConnection, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            # The locks live as long as this connection: a scan that cannot use it ends them all here too.
            await locks.execute("SELECT 1")
            for destination_id, task in list(self._tasks.items()):
                if task.done():  # paused, deleted or failed: the lock goes back
                    del self._tasks[destination_id]
                    if not task.cancelled() and task.exception() is not None:
                        log.error("destination %s: delivery stopped", destination_id, exc_info=task.exception())
                    await locks.execute("SELECT pg_advisory_unlock(%s, %s)", (store.LOCK_NAMESPACE, destination_id))
            async with self._engine.connect() as conn:
                ids = await store.active_ids(conn)
            for destination_id in ids:
                if destination_id in self._tasks:
                    continue
                got = await (
                    await locks.execute("SELECT pg_try_advisory_lock(%s, %s)", (store.LOCK_NAMESPACE, destination_id))
                ).fetchone()
                if got and got[0]:
                    log.info("delivering to destination %s", destination_id)
                    self._tasks[destination_id] = asyncio.create_task(self._deliver(destination_id))
            await _wait(stopping, self._settings.delivery_scan_seconds)

    async def _summarize(self, stopping: asyncio.Event) -> None:
        """While this worker delivers to any destination: the new BRIN ranges of `ingest_seq` summarized every
        _SUMMARIZE_SECONDS, so that its reads skip all but the ranges they need."""
        while not stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._settings.require_database_url(), autocommit=True
                ) as conn:
                    await conn.execute(f"SET lock_timeout = '{_SUMMARIZE_LOCK_TIMEOUT}'")
                    while not stopping.is_set():
                        if self._tasks:
                            await summarize_arrivals(conn)
                        await _wait(stopping, _SUMMARIZE_SECONDS)
            except psycopg.errors.InsufficientPrivilege as err:
                log.warning("cannot summarize the ingest_seq index (%s): reads scan unsummarized ranges", err)
                return
            except (psycopg.Error, OSError) as err:
                log.warning("summarizing the ingest_seq index failed (%s); retrying", err)
            await _wait(stopping, _SUMMARIZE_SECONDS)

    async def _drop_all(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def _deliver(self, destination_id: int) -> None:
        """One destination's loop; returns when it is paused or deleted. Database errors are retried."""
        first_seen: tuple[int, float] | None = None  # (seq, monotonic) of the oldest event of a partial batch
        while True:
            try:
                async with self._engine.connect() as conn:
                    d = await store.load(conn, destination_id)
                if d is None or d.status != "active":
                    return
                now = datetime.now(UTC)
                if d.next_attempt_at is not None and d.next_attempt_at > now:
                    await asyncio.sleep(min(_RECHECK_SECONDS, (d.next_attempt_at - now).total_seconds()))
                    continue
                final = await self.horizon.wait_beyond(d.cursor_seq, _RECHECK_SECONDS)
                if final is None or final <= d.cursor_seq:
                    continue
                async with self._engine.connect() as conn:
                    page = await events_after(conn, d.cursor_seq, final, d.wanted, d.batch_size)
                if not page.rows:  # nothing of this destination's up to the horizon
                    async with self._engine.begin() as conn:
                        await store.record_delivered(conn, d, page.through, 0, None)
                    continue
                if len(page.rows) < d.batch_size and d.max_wait_ms > 0:
                    if first_seen is None or first_seen[0] != page.rows[0][0]:
                        first_seen = (page.rows[0][0], time.monotonic())
                    left = d.max_wait_ms / 1000 - (time.monotonic() - first_seen[1])
                    if left > 0:  # a fuller batch later, unless the oldest event has waited enough
                        await self.horizon.wait_beyond(final, min(left, _RECHECK_SECONDS))
                        continue
                first_seen = None
                await self._attempt(d, page.rows, page.through)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("destination %s: database error; retrying", destination_id)
                await asyncio.sleep(self._settings.delivery_backoff_seconds)

    async def _attempt(self, d: store.Destination, rows: list[tuple[int, str, str]], through: int) -> None:
        batch_id = f"{d.id}-{rows[0][0]}-{rows[-1][0]}"
        body = batch_body(d.id, batch_id, [text for _, _, text in rows])
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "eventtrack-webhook-id": batch_id,
            HEADER: header_value(d.secret, int(time.time()), body),
        }
        status: int | None = None
        retry_after: float | None = None
        try:
            response = await self._client.post(d.url, content=body, headers=headers, timeout=d.timeout_ms / 1000)
            status = response.status_code
            if 200 <= status < 300:
                async with self._engine.begin() as conn:
                    await store.record_delivered(conn, d, through, len(rows), status)
                return
            answer = response.text[:RESPONSE_KEPT_BYTES]
            if 400 <= status < 500 and status not in _RETRYABLE_4XX:
                async with self._engine.begin() as conn:
                    await store.record_dead_letter(conn, d, rows, through, status, answer)
                log.warning("destination %s refused batch %s with %s: dead-lettered", d.id, batch_id, status)
                return
            error = f"HTTP {status}: {answer[:200]}"
            retry_after = store.retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC))
        except httpx.HTTPError as err:
            error = f"{type(err).__name__}: {err}"[:1000] or type(err).__name__
        s = self._settings
        delay = store.backoff_seconds(
            d.consecutive_failures + 1, s.delivery_backoff_seconds, s.delivery_backoff_max_seconds, random.random()
        )
        if retry_after is not None:
            delay = min(retry_after, s.delivery_retry_after_max_seconds)
        async with self._engine.begin() as conn:
            paused = await store.record_failure(conn, d, status, error, delay)
        log.log(
            logging.WARNING if paused else logging.INFO,
            "destination %s: batch %s failed (%s); %s",
            d.id,
            batch_id,
            error,
            "paused" if paused else f"next attempt in {delay:.1f}s",
        )


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass


async def run(settings: Settings, stopping: asyncio.Event) -> None:
    engine = create_async_engine(
        sqlalchemy_url(settings.require_database_url()), pool_size=4, max_overflow=8, pool_pre_ping=True
    )
    try:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            await Deliverer(settings, engine, client).run(stopping)
    finally:
        await engine.dispose()
