"""Reading committed events after a cursor, in arrival order (`ingest_seq`), up to the horizon.

`events` has no B-tree on `ingest_seq` (a BRIN only: one index insertion less per event on the write
path), so a reader far behind walks the range in windows: each query sorts at most one window's rows.
A BRIN range is only skipped once summarized, which VACUUM does after a partition has grown by a fifth:
until then every query reads the whole unsummarized tail of the day's partition (40 ms per query with
200,000 rows in that tail, 3 ms once summarized), so the delivery worker summarizes the new ranges itself
(`summarize_arrivals`, docs/performance.md "Streaming"). The last, partly filled range of a partition stays
unsummarized (Postgres summarizes whole ranges only): every query reads its at most 128 pages.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from eventtrack.analytics.segments import PropertyFilter, filters_sql

# (The colons are escaped for sqlalchemy's text(), which would take `:MI` for a parameter.)
# One event as the live tail and the webhooks show it (docs/operations.md "Streaming"): JSON built by
# Postgres, timestamps in UTC whatever the session's time zone.
_UTC = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24\\:MI\\:SS.US\"Z\"')"
_TIMESTAMP, _RECEIVED_AT = _UTC.format('e."timestamp"'), _UTC.format("e.received_at")
EVENT_JSON = (
    "json_build_object("
    "'uuid', e.uuid, 'seq', e.ingest_seq, 'event', e.event_type, 'distinct_id', e.distinct_id, "
    f"'timestamp', {_TIMESTAMP}, 'received_at', {_RECEIVED_AT}, "
    "'session_id', e.session_id, 'device_id', e.device_id, 'app_version', e.app_version, "
    "'os_name', e.os_name, 'os_version', e.os_version, 'properties', e.properties)::text"
)
FIRST_WINDOW = 5_000
MAX_WINDOW = 1_000_000
MAX_QUERIES = 16  # per call: a reader far behind a rare filter comes back with what it covered


@dataclass(frozen=True)
class EventFilter:
    """Which events a stream or a destination wants: all of them when empty."""

    event_types: tuple[str, ...] = ()
    distinct_id: str | None = None
    properties: tuple[PropertyFilter, ...] = ()

    def sql(self) -> tuple[str, dict]:
        where, params = filters_sql(list(self.properties), alias="e", prefix="tf")
        if self.event_types:
            where += " AND e.event_type = ANY(:event_types)"
            params["event_types"] = list(self.event_types)
        if self.distinct_id is not None:
            where += " AND e.distinct_id = :distinct_id"
            params["distinct_id"] = self.distinct_id
        return where, params


@dataclass
class Page:
    """Events in arrival order, as (seq, uuid, JSON text); `through`: every matching event with a seq up to it
    is in `rows` (a reader's next cursor)."""

    rows: list[tuple[int, str, str]]
    through: int


def page_query(where: str) -> str:
    """The read of one window (:lo, :hi] of `events_after`, at most :n rows; `where` from EventFilter.sql."""
    # The JSON is built outside the LIMIT: Postgres would build it for every row of the window before sorting
    # (5,000 rows for the 100 of a batch: most of a delivery's database time, bench/run_stream.py).
    return (
        f"SELECT e.ingest_seq, e.uuid::text, {EVENT_JSON} FROM ("
        f"SELECT e.* FROM events e WHERE e.ingest_seq > :lo AND e.ingest_seq <= :hi{where}"
        " ORDER BY e.ingest_seq LIMIT :n) e ORDER BY e.ingest_seq"
    )


async def events_after(
    conn: AsyncConnection, after: int, upto: int, wanted: EventFilter, limit: int, window: int = FIRST_WINDOW
) -> Page:
    """At most `limit` matching events with after < seq <= upto, oldest first."""
    where, params = wanted.sql()
    query = sa.text(page_query(where))
    rows: list[tuple[int, str, str]] = []
    lo = after
    for _ in range(MAX_QUERIES):
        if lo >= upto:
            break
        hi = min(upto, lo + window)
        found = (await conn.execute(query, {**params, "lo": lo, "hi": hi, "n": limit - len(rows)})).all()
        rows.extend((seq, uuid, text) for seq, uuid, text in found)
        if len(rows) >= limit:
            return Page(rows, through=rows[-1][0])
        lo = hi
        window = min(MAX_WINDOW, window * 2)
    return Page(rows, through=max(lo, after))


# The `ingest_seq` BRIN of each partition of `events`.
_ARRIVAL_INDEXES = (
    "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events_ingest_seq_brin'::regclass"
)


async def summarize_arrivals(conn: psycopg.AsyncConnection) -> int:
    """Summarizes the BRIN ranges of `ingest_seq` written since the last call, in every partition; returns how
    many. A partition locked by another summarizer (VACUUM, another worker) past the session's lock_timeout is
    skipped until next time. `conn` is in autocommit mode: one short transaction per partition."""
    names = [name for (name,) in await (await conn.execute(_ARRIVAL_INDEXES)).fetchall()]
    summarized = 0
    for name in names:
        try:
            row = await (await conn.execute("SELECT brin_summarize_new_values(%s::regclass)", (name,))).fetchone()
        except (psycopg.errors.LockNotAvailable, psycopg.errors.UndefinedTable):  # busy, or dropped by retention
            continue
        summarized += row[0] if row else 0
    return summarized
