"""A person's export reads events and sessions in keyset pages: every row once, oldest first, across pages."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from eventtrack.database import sqlalchemy_url
from ingest_api.privacy import store


def _collect(database_url: str, pages_of, ids: list[str]) -> list[list[dict]]:
    async def main():
        engine = create_async_engine(sqlalchemy_url(database_url))
        try:
            async with engine.connect() as conn:
                return [page async for page in pages_of(conn, ids)]
        finally:
            await engine.dispose()

    return asyncio.run(main())


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(store, "PAGE_ROWS", 2)


def test_events_are_exported_oldest_first_in_pages_ties_broken_by_uuid(
    db: psycopg.Connection, database_url, small_pages
):
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    times = [base, base + timedelta(minutes=1), base + timedelta(minutes=1), base + timedelta(minutes=2), base]
    rows = [(uuid.uuid4(), "u1" if i % 2 else "alias", t) for i, t in enumerate(times)]
    rows.append((uuid.uuid4(), "someone else", base))
    with db.cursor() as cur:
        cur.executemany(
            'INSERT INTO events (uuid, event_type, distinct_id, "timestamp", received_at) VALUES (%s, %s, %s, %s, now())',
            [(u, "e", d, t) for u, d, t in rows],
        )
    pages = _collect(database_url, store.event_pages, ["u1", "alias"])
    expected = sorted((t, u) for u, d, t in rows if d != "someone else")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [(r["timestamp"], r["uuid"]) for p in pages for r in p] == expected


def test_sessions_are_exported_oldest_first_in_pages(db: psycopg.Connection, database_url, small_pages):
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    sessions = [(uuid.uuid4(), "u1", base + timedelta(minutes=m)) for m in (3, 0, 2, 1)]
    with db.cursor() as cur:
        cur.executemany("INSERT INTO sessions (session_id, distinct_id, started_at) VALUES (%s, %s, %s)", sessions)
    pages = _collect(database_url, store.session_pages, ["u1"])
    assert [len(p) for p in pages] == [2, 2]
    assert [r["started_at"] for p in pages for r in p] == sorted(s[2] for s in sessions)
