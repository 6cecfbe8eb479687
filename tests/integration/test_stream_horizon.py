"""The arrival horizon (eventtrack/streaming/horizon.py) against real concurrent transactions: a reader that
follows `ingest_seq` up to the horizon never skips an event whose transaction commits late, where a reader
that follows the newest visible seq does."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid

import psycopg
from sqlalchemy.ext.asyncio import create_async_engine

from eventtrack.database import sqlalchemy_url
from eventtrack.streaming.horizon import Horizon, observe
from eventtrack.streaming.tail import EventFilter, events_after

INSERT = (
    'INSERT INTO events (uuid, event_type, distinct_id, "timestamp", received_at)'
    " VALUES (%s, %s, 'u', now(), now()) RETURNING ingest_seq"
)


def test_the_horizon_stays_below_a_seq_whose_transaction_is_still_open(database_url, db):
    async def check():
        engine = create_async_engine(sqlalchemy_url(database_url))
        horizon = Horizon()
        try:
            async with engine.connect() as conn:  # nobody writing: the horizon is the newest seq at once
                assert horizon.observe(*await observe(conn)) is not None
            with psycopg.connect(database_url) as slow, psycopg.connect(database_url, autocommit=True) as fast:
                early = slow.execute(INSERT, (uuid.uuid4(), "early")).fetchone()[0]  # open: not committed
                late = fast.execute(INSERT, (uuid.uuid4(), "late")).fetchone()[0]
                assert late > early
                async with engine.connect() as conn:
                    for _ in range(3):
                        final = horizon.observe(*await observe(conn))
                    assert final is not None and final < early  # seq `late` is visible, but not final yet
                    page = await events_after(conn, early - 1, final, EventFilter(), 100)
                    assert page.rows == []
                slow.commit()
                async with engine.connect() as conn:
                    horizon.observe(*await observe(conn))
                    final = horizon.observe(*await observe(conn))
                    assert final >= late
                    page = await events_after(conn, early - 1, final, EventFilter(), 100)
                    assert [seq for seq, _, _ in page.rows] == [early, late]
        finally:
            await engine.dispose()

    asyncio.run(check())


def test_concurrent_writers_committing_out_of_order_skip_nothing(database_url, db):
    """Writers hold their transaction open a random while after taking their seqs; two readers follow
    along: by the horizon (every event once, in order) and by the newest visible seq (skips some)."""
    writers, per_writer = 6, 40
    written: list[int] = []
    lock = threading.Lock()
    done = threading.Event()

    def write(seed: int) -> None:
        rng = random.Random(seed)
        with psycopg.connect(database_url) as conn:
            for _ in range(per_writer):
                seqs = [conn.execute(INSERT, (uuid.uuid4(), "e")).fetchone()[0] for _ in range(rng.randint(1, 3))]
                # Writer 0 holds every transaction open for 30 ms while the others commit: the naive reader
                # is all but certain to read past its seqs in one of them (the trap made to happen).
                threading.Event().wait(0.03 if seed == 0 else rng.random() * 0.01)
                conn.commit()
                with lock:
                    written.extend(seqs)

    async def follow() -> tuple[list[int], list[int]]:
        engine = create_async_engine(sqlalchemy_url(database_url))
        horizon, by_horizon, naive = Horizon(), [], []
        cursor = naive_cursor = start
        try:
            while True:
                finished = done.is_set()
                async with engine.connect() as conn:
                    final = horizon.observe(*await observe(conn))
                    if final is not None and final > cursor:
                        page = await events_after(conn, cursor, final, EventFilter(), 10_000)
                        by_horizon += [seq for seq, _, _ in page.rows]
                        cursor = page.through
                    newest = await _newest_visible(conn, naive_cursor)
                    page = await events_after(conn, naive_cursor, newest, EventFilter(), 10_000)
                    naive += [seq for seq, _, _ in page.rows]
                    naive_cursor = max(naive_cursor, newest)
                if finished and final is not None and final >= max(written, default=0):
                    return by_horizon, naive
                await asyncio.sleep(0.002)
        finally:
            await engine.dispose()

    start = db.execute("SELECT coalesce(max(ingest_seq), 0) FROM events").fetchone()[0]
    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    result: dict = {}
    reader = threading.Thread(target=lambda: result.setdefault("r", asyncio.run(follow())))
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join(timeout=60)
    by_horizon, naive = result["r"]
    assert by_horizon == sorted(written)  # each once, in arrival order
    assert len(written) > writers * per_writer
    assert set(naive) < set(written), "the naive reader skipped nothing: the test no longer shows the trap"


async def _newest_visible(conn, at_least: int) -> int:
    import sqlalchemy as sa

    newest = (await conn.execute(sa.text("SELECT max(ingest_seq) FROM events"))).scalar_one()
    return max(at_least, newest or 0)


def test_a_page_builds_the_json_of_its_own_rows_only(database_url, db):
    """Not of every row of the window it sorts them from: the delivery worker reads windows of 5,000 seqs for
    batches of 100 (docs/performance.md "Streaming")."""
    import sqlalchemy as sa

    from eventtrack.streaming.tail import page_query

    async def plan() -> list[dict]:
        engine = create_async_engine(sqlalchemy_url(database_url))
        try:
            async with engine.connect() as conn:
                query = sa.text("EXPLAIN (VERBOSE, FORMAT JSON) " + page_query(EventFilter().sql()[0]))
                return (await conn.execute(query, {"lo": 0, "hi": 5000, "n": 100})).scalar_one()
        finally:
            await engine.dispose()

    def nodes(node: dict, depth: int = 0):
        yield depth, node
        for child in node.get("Plans", []):
            yield from nodes(child, depth + 1)

    tree = list(nodes(asyncio.run(plan())[0]["Plan"]))
    building = [
        (depth, node["Node Type"])
        for depth, node in tree
        if any("json_build_object" in column for column in node.get("Output", []))
    ]
    limits = [depth for depth, node in tree if node["Node Type"] == "Limit"]
    # Above the LIMIT only (the outer select, a sort of the page's rows at most), never in the scans below it.
    assert building and limits and all(depth < min(limits) for depth, _ in building), building
