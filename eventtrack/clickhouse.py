"""ClickHouse: a columnar copy of the raw events for installs that outgrow one Postgres (docs/scaling.md).

Postgres stays the system of record. The loader copies events by *arrival* (events.ingest_seq, with
the settle rule the dbt marts use), so late events and resends need nothing special, and each load
is exact and idempotent:

- a load first records its range (lo, hi] in ClickHouse's `loads` table, then inserts the range in
  blocks of fixed ingest_seq width, each with a deduplication token naming its bounds, then records
  the range as done. A load that died half-way is redone with the same range and the same blocks, so
  ClickHouse drops the blocks it already has: each uuid is there once (Postgres holds it once);
- the state lives next to the data: a ClickHouse that lost its data starts again from 0 by itself;
- erasures (privacy) are queued in Postgres in the erasure's transaction and applied by the next load;
- retention drops whole UTC days (the table is partitioned by day, like `events` in Postgres).

Everything that talks to ClickHouse goes through `clickhouse_connect` (the official client); a
`chdb://` URL selects its embedded engine (chDB, one process per data directory: tests and
single-process tools, not `eventtrack up`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg

from eventtrack.analytics.segments import (
    CLICKHOUSE_PROMOTED_TYPES,
    clickhouse_promoted_column,
    clickhouse_promoted_expr,
)

DEFAULT_DATABASE = "eventtrack"
# Width, in ingest_seq values, of one insert block: a block's bounds are its deduplication token.
BLOCK_SEQ = 100_000
# What a load copies: ClickHouse column -> the Postgres expression it is copied from.
EVENT_COLUMNS = {
    **{c: f'"{c}"' for c in ("uuid", "event_type", "distinct_id", "properties", "device_id", "session_id")},
    # Each top-level property's text as Postgres's `->>` gives it (a JSON object of strings; nulls left out):
    # ClickHouse re-spells numbers and objects it parses (1.50 -> 1.5), so the text is taken from Postgres.
    "property_texts_json": "(SELECT coalesce(json_object_agg(key, value) FILTER (WHERE value IS NOT NULL), '{}')"
    " FROM jsonb_each_text(properties))",
    **{c: f'"{c}"' for c in ("app_version", "os_name", "os_version")},
    # Times as UTC without an offset: ClickHouse's basic parser reads them (best_effort, for the offset,
    # took a third of the insert's time: docs/performance.md).
    **{c: f"(\"{c}\" AT TIME ZONE 'UTC')" for c in ("timestamp", "client_timestamp", "sent_at", "received_at")},
    "ingest_seq": '"ingest_seq"',
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Held by a load and by each day of a backfill: a backfill drops and refills a day, which must not
# race with a load adding rows to it (pg_advisory_lock; arbitrary, constant).
LOAD_LOCK = 7_311_042_015
# Every insert written before it returns, deduplicated by its own token: a load's exactness rests on both
# (chDB's default is asynchronous inserts, whose deduplication and visibility differ; a server's is not).
_SYNC_INSERTS = {"async_insert": 0}
# How the CSV Postgres writes is read: times in UTC as `YYYY-MM-DD hh:mm:ss[.ffffff]`; an empty unquoted field is NULL.
_CSV_INPUT = {"date_time_input_format": "basic", "input_format_csv_empty_as_default": 1}


class ClickHouseConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    """Where ClickHouse is: the URL as configured, the database, and the cluster (None: one node)."""

    url: str
    database: str
    cluster: str | None = None

    @property
    def embedded(self) -> bool:
        return self.url.startswith("chdb:")

    @property
    def events_table(self) -> str:
        """The table that holds the parts (a cluster's local replicated table behind the Distributed one)."""
        return "events_local" if self.cluster else "events"

    def drop_day(self, day: date) -> str:
        """The statement that drops one UTC day of events (on every node of a cluster)."""
        on_cluster = f" ON CLUSTER {self.cluster}" if self.cluster else ""
        return f"ALTER TABLE {self.database}.{self.events_table}{on_cluster} DROP PARTITION '{day.isoformat()}'"

    @classmethod
    def parse(cls, url: str, cluster: str | None = None) -> Target:
        """`http(s)://user:password@host:port/database` or `chdb://<path>` / `chdb://:memory:`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "chdb"):
            raise ClickHouseConfigError(f"CLICKHOUSE_URL must start with http://, https:// or chdb://, got {url!r}")
        database = DEFAULT_DATABASE if parts.scheme == "chdb" else (parts.path.strip("/") or DEFAULT_DATABASE)
        for name, value in (("database", database), ("cluster", cluster)):
            if value is not None and not _IDENTIFIER.fullmatch(value):
                raise ClickHouseConfigError(f"the ClickHouse {name} name {value!r} is not a plain identifier")
        return cls(url=url, database=database, cluster=cluster)


def connect(target: Target):
    """A clickhouse_connect client with the target's database created and its tables in place."""
    import clickhouse_connect  # here: an install without ClickHouse never loads the client

    if target.embedded:
        location = target.url.removeprefix("chdb://")
        dsn = "chdb://memory" if location in ("", ":memory:", "memory") else f"chdb://{location}"
        client = clickhouse_connect.get_client(dsn=dsn, settings=_SYNC_INSERTS)
    else:
        parts = urlsplit(target.url)
        client = clickhouse_connect.get_client(
            host=parts.hostname or "localhost",
            port=parts.port,
            username=parts.username or "default",
            password=parts.password or "",
            secure=parts.scheme == "https",
            settings=_SYNC_INSERTS,
        )
    for statement in schema_ddl(target):
        client.command(statement)
    return client


def schema_ddl(target: Target) -> list[str]:
    """CREATE statements for the events table and the load log; with a cluster, replicated and sharded.

    Ordering key (docs/scaling.md): the analytical queries select a few event types over a time range
    and group by user, so rows are sorted by event type, then user, then time. The day partition makes
    retention a partition drop and prunes every time-bounded query to its days. The uuid closes the key
    (ReplacingMergeTree would fold an accidental second copy on merge; exactness comes from the loader).
    """
    db, cluster = target.database, target.cluster
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    columns = """(
    uuid UUID,
    event_type LowCardinality(String),
    distinct_id String,
    properties String CODEC(ZSTD(1)),
    property_texts_json String EPHEMERAL,
    property_text Map(String, String) DEFAULT JSONExtract(property_texts_json, 'Map(String, String)') CODEC(ZSTD(1)),
    device_id Nullable(String),
    session_id Nullable(String),
    app_version LowCardinality(Nullable(String)),
    os_name LowCardinality(Nullable(String)),
    os_version LowCardinality(Nullable(String)),
    timestamp DateTime64(6, 'UTC'),
    client_timestamp Nullable(DateTime64(6, 'UTC')),
    sent_at Nullable(DateTime64(6, 'UTC')),
    received_at DateTime64(6, 'UTC'),
    ingest_seq UInt64
)"""
    layout = (
        "PARTITION BY toDate(timestamp) ORDER BY (event_type, distinct_id, timestamp, uuid)"
        # Remembered block tokens: a redone load's blocks are dropped (replicated tables keep them anyway).
        " SETTINGS non_replicated_deduplication_window = 10000"
    )
    # The load log and the backfill log: small, append-only, read whole.
    logs = {
        "loads": "(lo UInt64, hi UInt64, done UInt8, rows UInt64, newest_received_at Nullable(DateTime64(6, 'UTC')),"
        " at DateTime64(6, 'UTC'))",
        "backfills": "(run String, day Nullable(Date), rows UInt64, finished UInt8, at DateTime64(6, 'UTC'))",
    }
    statements = [f"CREATE DATABASE IF NOT EXISTS {db}{on_cluster}"]
    if not cluster:
        return [
            *statements,
            f"CREATE TABLE IF NOT EXISTS {db}.events {columns} ENGINE = ReplacingMergeTree {layout}",
            *(
                f"CREATE TABLE IF NOT EXISTS {db}.{name} {cols} ENGINE = MergeTree ORDER BY at"
                for name, cols in logs.items()
            ),
        ]
    # A user's events on one shard (sharding by distinct_id): funnels and retention, computed per user,
    # run shard-local and only their per-user results travel.
    return [
        *statements,
        f"CREATE TABLE IF NOT EXISTS {db}.events_local{on_cluster} {columns} ENGINE = "
        f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{db}/events_local', '{{replica}}') {layout}",
        f"CREATE TABLE IF NOT EXISTS {db}.events{on_cluster} AS {db}.events_local "
        f"ENGINE = Distributed({cluster}, {db}, events_local, cityHash64(distinct_id))",
        # One replication group across the whole cluster: every node sees the same logs.
        *(
            f"CREATE TABLE IF NOT EXISTS {db}.{name}{on_cluster} {cols} ENGINE = "
            f"ReplicatedMergeTree('/clickhouse/tables/all/{db}/{name}', '{{shard}}-{{replica}}') ORDER BY at"
            for name, cols in logs.items()
        ),
    ]


def promoted_columns(client, target: Target) -> frozenset[str]:
    """The promoted properties' columns the events table has: what the query builders read a promoted
    key from (eventtrack/analytics/segments.py), asked each time so a promotion counts at once."""
    rows = client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'events' AND startsWith(name, 'p_')",
        parameters={"db": target.database},
    ).result_rows
    return frozenset(name for (name,) in rows)


def promote_ddl(target: Target, key: str, kind: str) -> list[str]:
    """The statements that add a promoted property's column and compute it for the rows already there.

    MATERIALIZED: an insert computes it, a SELECT * leaves it out, and parts written before it compute it on
    read until MATERIALIZE COLUMN (a mutation, in the background) has written it. On a cluster the local
    tables hold it and the Distributed table declares it the same way (its reads go to the local ones).
    """
    column = clickhouse_promoted_column(key, kind)
    definition = f"{column} {CLICKHOUSE_PROMOTED_TYPES[kind]} MATERIALIZED {clickhouse_promoted_expr(key, kind)}"
    on_cluster = f" ON CLUSTER {target.cluster}" if target.cluster else ""
    tables = [target.events_table, "events"] if target.cluster else ["events"]
    return [
        *(f"ALTER TABLE {target.database}.{t}{on_cluster} ADD COLUMN IF NOT EXISTS {definition}" for t in tables),
        f"ALTER TABLE {target.database}.{target.events_table}{on_cluster} MATERIALIZE COLUMN {column}",
    ]


def ensure_promoted_columns(pg: psycopg.Connection, client, target: Target, *, wait: bool = False) -> list[str]:
    """Adds the column of every promoted property (Postgres's promoted_properties, the record) that
    ClickHouse lacks: after `eventtrack promote-property`, and at each load (a ClickHouse that was
    unreachable then, or started again empty, catches up). Returns the columns added. `wait`: until the
    existing rows have it too (else a background mutation writes it; reads are right either way)."""
    have = promoted_columns(client, target)
    added = []
    for key, kind in pg.execute("SELECT key, kind FROM promoted_properties ORDER BY key, kind").fetchall():
        if clickhouse_promoted_column(key, kind) in have:
            continue
        for statement in promote_ddl(target, key, kind):
            client.command(statement, settings={"mutations_sync": 2 if wait else 0})
        added.append(clickhouse_promoted_column(key, kind))
    return added


@dataclass(frozen=True)
class LoadResult:
    lo: int
    hi: int  # the watermark after this load: every event with ingest_seq <= hi is in ClickHouse
    rows: int  # rows of the range copied (ClickHouse drops the blocks of a redone range it already has)
    redone: bool  # the range was a load that had died half-way
    erasures: int  # erasure requests applied
    newest_received_at: datetime | None


def watermark(client, target: Target) -> tuple[int, tuple[int, int] | None]:
    """(the newest ingest_seq fully loaded, the range of a load that started and never finished)."""
    rows = client.query(f"SELECT lo, hi, max(done) FROM {target.database}.loads GROUP BY lo, hi").result_rows
    done = max((hi for _, hi, finished in rows if finished), default=0)
    unfinished = [(lo, hi) for lo, hi, finished in rows if not finished and hi > done]
    return done, (max(unfinished) if unfinished else None)


def settled_max_seq(pg: psycopg.Connection, after: int, settle: timedelta) -> int | None:
    """The newest arrival older than the settle delay: younger rows may sit behind still-open
    transactions that hold lower ingest_seq values (the dbt marts' rule, macros/rebuild_window.sql)."""
    (hi,) = pg.execute(
        "SELECT max(ingest_seq) FROM events WHERE ingest_seq > %s AND received_at < now() - %s", (after, settle)
    ).fetchone()
    return hi


def blocks(lo: int, hi: int, width: int = BLOCK_SEQ) -> Iterator[tuple[int, int]]:
    """(lo, hi] cut at the multiples of `width`: the same range always gives the same blocks (pure)."""
    start = lo
    while start < hi:
        end = min(hi, (start // width + 1) * width)
        yield start, end
        start = end


def _copy_csv(pg: psycopg.Connection, where: str, params: tuple[Any, ...]) -> tuple[bytes, int]:
    """The rows as CSV, and how many. Unordered: a block's deduplication token names it, not its bytes."""
    columns = ", ".join(EVENT_COLUMNS.values())
    sql = f"COPY (SELECT {columns} FROM events WHERE {where}) TO STDOUT WITH (FORMAT csv)"
    data = bytearray()
    with pg.cursor() as cur:
        with cur.copy(sql, params) as copy:
            while row := copy.read():  # one row a message: the one per-row step in Python, kept minimal
                data += row
        return bytes(data), cur.rowcount


def _prefetched(
    pg: psycopg.Connection, ranges: Iterator[tuple[int, int]]
) -> Iterator[tuple[tuple[int, int], tuple[bytes, int]]]:
    """Each (lo, hi] range with its rows as CSV, the next range read from Postgres while the caller
    inserts this one: Postgres's COPY and ClickHouse's parsing take about as long, so overlapped they
    nearly double the load rate (docs/performance.md). Only the reader thread uses `pg` meanwhile."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        ahead = None
        for block in ranges:
            nxt = (block, reader.submit(_copy_csv, pg, "ingest_seq > %s AND ingest_seq <= %s", block))
            if ahead is not None:
                yield ahead[0], ahead[1].result()
            ahead = nxt
        if ahead is not None:
            yield ahead[0], ahead[1].result()


def _insert_csv(client, target: Target, data: bytes, settings: dict[str, Any]) -> None:
    if data:
        client.raw_insert(
            f"{target.database}.events", list(EVENT_COLUMNS), data, settings={**_CSV_INPUT, **settings}, fmt="CSV"
        )


def _log_load(client, target: Target, lo: int, hi: int, done: bool, rows: int, newest: datetime | None) -> None:
    client.insert(
        f"{target.database}.loads",
        [(lo, hi, int(done), rows, newest, datetime.now(UTC))],
        column_names=["lo", "hi", "done", "rows", "newest_received_at", "at"],
    )


def load_arrivals(
    pg: psycopg.Connection,
    client,
    target: Target,
    settle: timedelta,
    *,
    after_insert: Callable[[], None] | None = None,
) -> LoadResult:
    """Copies the events that arrived since the last load, then applies the queued erasures.

    `after_insert` runs between the inserts and the record that the load is done (tests use it to
    die there).
    """
    pg.execute("SET TIME ZONE 'UTC'")
    pg.execute("SELECT pg_advisory_lock(%s)", (LOAD_LOCK,))
    try:
        return _load_locked(pg, client, target, settle, after_insert)
    finally:
        pg.execute("SELECT pg_advisory_unlock(%s)", (LOAD_LOCK,))


def _load_locked(pg, client, target: Target, settle: timedelta, after_insert) -> LoadResult:
    ensure_promoted_columns(pg, client, target)
    done, unfinished = watermark(client, target)
    redone = unfinished is not None
    if unfinished:
        lo, hi = unfinished
    else:
        lo, hi = done, settled_max_seq(pg, done, settle) or done
    rows = 0
    newest = None
    if hi > lo:
        if not redone:
            _log_load(client, target, lo, hi, False, 0, None)
        for (start, end), (data, count) in _prefetched(pg, blocks(lo, hi)):
            _insert_csv(client, target, data, {"insert_deduplication_token": f"events:{start}:{end}"})
            rows += count
        (newest,) = pg.execute("SELECT max(received_at) FROM events WHERE ingest_seq = %s", (hi,)).fetchone()
        if after_insert:
            after_insert()
        _log_load(client, target, lo, hi, True, rows, newest)
    erased = apply_erasures(pg, client, target, loaded=hi)
    return LoadResult(lo=lo, hi=hi, rows=rows, redone=redone, erasures=erased, newest_received_at=newest)


# The uuids Postgres holds of erased people (%(ids)s) that ClickHouse holds (ingest_seq up to its watermark,
# %(loaded)s): what they sent after their erasure, which stays. Few: a queued erasure is applied by the next load.
# The driver's parameter style, so that the loader (psycopg) and the API (SQLAlchemy's exec_driver_sql) run one text.
KEPT_AFTER_ERASURE_SQL = "SELECT uuid::text FROM events WHERE distinct_id = ANY(%(ids)s) AND ingest_seq <= %(loaded)s"


def apply_erasures(pg: psycopg.Connection, client, target: Target, *, loaded: int) -> int:
    """Deletes the people erased in Postgres since the last load (read after the inserts: rows read
    before an erasure committed are deleted now or by the next load).

    What goes is every row of theirs that Postgres no longer holds: their events from before the erasure,
    a day Postgres's retention dropped first included, but not what they sent after it (a person may come
    back; those events are Postgres's to keep and ClickHouse may have loaded them already)."""
    pending = pg.execute("SELECT id, distinct_ids FROM clickhouse_erasures ORDER BY id")
    requests = pending.fetchall()
    if not requests:
        return 0
    ids = sorted({distinct_id for _, row_ids in requests for distinct_id in row_ids})
    client.command(
        f"DELETE FROM {target.database}.events"
        " WHERE distinct_id IN {ids:Array(String)} AND uuid NOT IN {kept:Array(UUID)}",
        parameters={
            "ids": ids,
            "kept": [u for (u,) in pg.execute(KEPT_AFTER_ERASURE_SQL, {"ids": ids, "loaded": loaded})],
        },
    )
    # Gone once applied: the queue is the last place that held the erased ids.
    pg.execute("DELETE FROM clickhouse_erasures WHERE id = ANY(%s)", ([row_id for row_id, _ in requests],))
    return len(requests)


def drop_days_before(client, target: Target, cutoff: date) -> list[date]:
    """Retention: drops every day partition before `cutoff` (by UTC day, as Postgres does). Returns the days."""
    parts = client.query(
        "SELECT DISTINCT partition FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active",
        parameters={"db": target.database, "t": target.events_table},
    ).result_rows
    days = sorted(d for d in (date.fromisoformat(p) for (p,) in parts) if d < cutoff)
    for day in days:
        client.command(target.drop_day(day))
    return days


def backfill_day(pg: psycopg.Connection, client, target: Target, day: date) -> int:
    """Replaces one UTC day in ClickHouse with Postgres's rows of that day up to the load watermark
    (newer rows are the loader's). Returns the rows copied. Idempotent: the day is dropped first."""
    pg.execute("SET TIME ZONE 'UTC'")
    pg.execute("SELECT pg_advisory_lock(%s)", (LOAD_LOCK,))
    try:
        loaded, _ = watermark(client, target)
        client.command(target.drop_day(day))
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        data, rows = _copy_csv(
            pg,
            '"timestamp" >= %s AND "timestamp" < %s AND ingest_seq <= %s',
            (start, start + timedelta(days=1), loaded),
        )
        # No deduplication: the day was just emptied, and a block equal to one loaded before is new data now.
        _insert_csv(client, target, data, {"insert_deduplicate": 0})
        return rows
    finally:
        pg.execute("SELECT pg_advisory_unlock(%s)", (LOAD_LOCK,))


def claim_history(pg: psycopg.Connection, client, target: Target, settle: timedelta) -> int:
    """Before a first backfill (nothing loaded yet): records the settled history as loaded, so the
    loader carries on after it while the backfill fills the days. Returns the watermark."""
    pg.execute("SELECT pg_advisory_lock(%s)", (LOAD_LOCK,))
    try:
        loaded, unfinished = watermark(client, target)
        if loaded == 0 and unfinished is None:
            loaded = settled_max_seq(pg, 0, settle) or 0
            if loaded:
                _log_load(client, target, 0, loaded, True, 0, None)
        return loaded
    finally:
        pg.execute("SELECT pg_advisory_unlock(%s)", (LOAD_LOCK,))


def days_in_postgres(pg: psycopg.Connection, since: date | None) -> list[date]:
    """The UTC days `events` holds rows of, from `since` on (whatever the session's time zone)."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None
    rows = pg.execute(
        """SELECT DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date FROM events
           WHERE %(start)s::timestamptz IS NULL OR "timestamp" >= %(start)s ORDER BY 1""",
        {"start": start},
    ).fetchall()
    return [day for (day,) in rows]


@dataclass(frozen=True)
class DayCount:
    day: date
    postgres: int
    clickhouse: int


def status(pg: psycopg.Connection, client, target: Target) -> dict[str, Any]:
    """What `eventtrack clickhouse-status` prints: the watermark, the lag, and rows per day on both sides
    (up to the watermark, so the two are comparable while arrivals wait for the next load)."""
    loaded, unfinished = watermark(client, target)
    pg.execute("SET TIME ZONE 'UTC'")
    (newest_seq, newest_arrival) = pg.execute("SELECT max(ingest_seq), max(received_at) FROM events").fetchone()
    newest_loaded = client.query(
        f"SELECT newest_received_at FROM {target.database}.loads WHERE done ORDER BY hi DESC LIMIT 1"
    ).result_rows
    loaded_arrival = newest_loaded[0][0] if newest_loaded else None
    if loaded_arrival is not None and loaded_arrival.tzinfo is None:  # the client gives UTC without a zone
        loaded_arrival = loaded_arrival.replace(tzinfo=UTC)
    (pending_erasures,) = pg.execute("SELECT count(*) FROM clickhouse_erasures").fetchone()
    in_pg = dict(
        pg.execute(
            """SELECT ("timestamp" AT TIME ZONE 'UTC')::date, count(*) FROM events WHERE ingest_seq <= %s
               GROUP BY 1""",
            (loaded,),
        ).fetchall()
    )
    in_ch = dict(
        client.query(
            f"SELECT toDate(timestamp), count() FROM {target.database}.events WHERE ingest_seq <= {{w:UInt64}} "
            "GROUP BY 1",
            parameters={"w": loaded},
        ).result_rows
    )
    days = [DayCount(day, in_pg.get(day, 0), in_ch.get(day, 0)) for day in sorted(set(in_pg) | set(in_ch))]
    return {
        "loaded_up_to_ingest_seq": loaded,
        "newest_ingest_seq": newest_seq or 0,
        "unfinished_load": unfinished,
        "seconds_behind": (newest_arrival - loaded_arrival).total_seconds()
        if newest_arrival and loaded_arrival
        else 0.0,
        "pending_erasures": pending_erasures,
        "days": days,
    }


def backfill_resume_point(client, target: Target) -> tuple[str, date] | None:
    """(run, last day done) of a backfill that stopped before it finished, or None."""
    rows = client.query(
        f"SELECT run, max(day), max(finished) FROM {target.database}.backfills GROUP BY run ORDER BY run DESC LIMIT 1"
    ).result_rows
    if not rows or rows[0][2] or rows[0][1] is None:
        return None
    return rows[0][0], rows[0][1]


def log_backfill(client, target: Target, run: str, day: date | None, rows: int, finished: bool) -> None:
    client.insert(
        f"{target.database}.backfills",
        [(run, day, rows, int(finished), datetime.now(UTC))],
        column_names=["run", "day", "rows", "finished", "at"],
    )
