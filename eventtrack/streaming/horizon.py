"""The arrival horizon: the newest `ingest_seq` below which no event can still appear.

`ingest_seq` values are handed out by a sequence when a row is written, but the rows become visible when
their transaction commits, and transactions commit in any order: reading "everything after my cursor"
can see seq 12 while seq 11's transaction is still open, and a cursor moved to 12 would skip 11 for
good. The horizon is what a reader may move its cursor to.

The rule (no bookkeeping on the write path): whoever takes an `ingest_seq` for `events` is inserting into
it, and so already holds a RowExclusiveLock on the table (taken when the statement is planned, before its
rows are built) until its transaction ends. So, reading first the sequence's last value V and then the
set L of transactions holding that lock: every seq <= V was either committed before, or will never be
(rolled back, or taken for another table), or belongs to a transaction in L. Once none of L is running
any more, every seq <= V is final: visible to any new snapshot, or never. A poll resolves the previous
polls' (V, L) pairs whose transactions have all ended; with no writer in flight, V is final at once.
Writers are found through `pg_locks` of this database, so the rule holds across API workers and
machines. A transaction left open after writing to `events` holds the horizon back until it ends
(docs/troubleshooting.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# The sequence's last value, as the newest seq handed out so far (is_called false: none handed out yet).
_LAST_VALUE = sa.text("SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM events_ingest_seq")


async def newest_seq(conn: AsyncConnection) -> int:
    """The newest ingest_seq handed out so far (committed or not)."""
    return int((await conn.execute(_LAST_VALUE)).scalar_one())


# The transactions writing to `events` or any of its partitions right now (other than this one).
_WRITERS = sa.text(
    """
    SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), '{}')
    FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.mode = 'RowExclusiveLock'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.pid <> pg_backend_pid()
      AND l.relation IN (
          SELECT 'events'::regclass
          UNION ALL
          SELECT inhrelid FROM pg_inherits WHERE inhparent = 'events'::regclass
      )
    """
)

# Unresolved observations kept at most; the oldest and the newest are kept (dropping is only ever later).
MAX_PENDING = 64


@dataclass
class Horizon:
    """The pure part: observations in, the final horizon out."""

    final: int | None = None
    _pending: list[tuple[int, frozenset[str]]] = field(default_factory=list)

    def observe(self, last_value: int, writers: frozenset[str]) -> int | None:
        """One poll's (V, L); returns the horizon after it."""
        self._pending.append((last_value, writers))
        # An observation counts as resolved when none of its writers is among the current ones; the
        # current one itself only when it has none. (Its own writers are all still "current".)
        resolved = [v for v, held in self._pending[:-1] if not (held & writers)]
        if not writers:
            resolved.append(last_value)
        if resolved:
            newest = max(resolved)
            self.final = newest if self.final is None else max(self.final, newest)
            # A resolved observation settles every older one too (its V covers theirs).
            self._pending = [(v, held) for v, held in self._pending if v > newest]
        if len(self._pending) > MAX_PENDING:
            self._pending = [self._pending[0], *self._pending[-(MAX_PENDING - 1) :]]
        return self.final


async def observe(conn: AsyncConnection) -> tuple[int, frozenset[str]]:
    """Reads (V, L) in that order, each statement with its own snapshot (L must be read after V)."""
    last_value = await newest_seq(conn)
    writers = (await conn.execute(_WRITERS)).scalar_one()
    return last_value, frozenset(writers)


class HorizonWatch:
    """Polls the horizon every `interval` seconds while anyone waits on it; `wait_beyond` wakes readers."""

    def __init__(self, engine: AsyncEngine, interval: float):
        self._engine = engine
        self._interval = interval
        self._horizon = Horizon()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._waiters = 0
        self.error: BaseException | None = None

    @property
    def final(self) -> int | None:
        return self._horizon.final

    async def poll_once(self) -> int | None:
        async with self._engine.connect() as conn:
            last_value, writers = await observe(conn)
            await conn.rollback()
        before = self._horizon.final
        after = self._horizon.observe(last_value, writers)
        if after != before:
            async with self._changed:
                self._changed.notify_all()
        return after

    async def wait_beyond(self, seq: int | None, timeout: float) -> int | None:
        """The horizon once it is past `seq` (None: once known), or after `timeout` seconds whatever it is."""
        self._ensure_polling()
        self._waiters += 1
        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.final is not None and (seq is None or self.final > seq)),
                    timeout,
                )
        except TimeoutError:
            pass
        finally:
            self._waiters -= 1
        return self.final

    def _ensure_polling(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        idle = 0.0
        while idle < 30.0:  # stops polling 30 s after its last reader left; the next one starts it again
            try:
                await self.poll_once()
                self.error = None
            except Exception as err:  # the database is away: readers see no new horizon until it is back
                self.error = err
            await asyncio.sleep(self._interval)
            idle = idle + self._interval if self._waiters == 0 else 0.0

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
