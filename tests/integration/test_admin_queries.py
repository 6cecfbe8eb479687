"""The admin query functions called directly (as the dashboard calls them) against the real Postgres."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from eventtrack.database import sqlalchemy_url
from eventtrack.errors import ApiError
from ingest_api.admin.events import event_listing
from ingest_api.admin.feature_flags import create_flag, flag_by_id, flag_listing, update_flag
from ingest_api.admin.pagination import decode_cursor
from ingest_api.admin.rows import NEWEST_FIRST_KEY
from ingest_api.config_cache import ConfigCache


def run(database_url: str, work):
    """`work(engine)` on an engine of its own, in a fresh event loop."""

    async def main():
        engine = create_async_engine(sqlalchemy_url(database_url))
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_event_listing_pages_newest_first_by_its_cursor_tokens(db: psycopg.Connection, database_url: str):
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    ids = [uuid.uuid4() for _ in range(5)]
    with db.cursor() as cur:
        cur.executemany(
            'INSERT INTO events (uuid, event_type, distinct_id, "timestamp", received_at) VALUES (%s, %s, %s, %s, now())',
            [(ids[i], "page_view" if i != 2 else "other", "u1", base + timedelta(minutes=i)) for i in range(5)],
        )

    async def pages(engine):
        seen, cursor = [], None
        async with engine.connect() as conn:
            while True:
                part = await event_listing(conn, event_type="page_view", limit=2, cursor=cursor)
                seen.append(part)
                if part.next is None:
                    return seen
                cursor = decode_cursor(part.next, NEWEST_FIRST_KEY)

    parts = run(database_url, pages)
    listed = [e["uuid"] for part in parts for e in part.results]
    assert listed == [str(ids[i]) for i in (4, 3, 1, 0)]  # newest first, the other type left out
    assert [len(p.results) for p in parts] == [2, 2] and parts[0].previous is None and parts[1].previous is not None
    first = parts[0].results[0]
    assert datetime.fromisoformat(first["timestamp"]) == base + timedelta(minutes=4)  # as the API writes it


def test_flag_service_functions_validate_store_and_report_missing_flags(db: psycopg.Connection, database_url: str):
    async def work(engine):
        config = ConfigCache(engine)
        created = await create_flag(engine, config, {"key": "checkout", "rollout_percentage": 25})
        with pytest.raises(ApiError) as duplicate:
            await create_flag(engine, config, {"key": "checkout", "rollout_percentage": 5})
        with pytest.raises(ApiError) as invalid:
            await create_flag(engine, config, {"key": "other", "rollout_percentage": 250})
        toggled = await update_flag(engine, config, created["id"], {"active": False}, partial=True)
        with pytest.raises(ApiError) as missing:
            await update_flag(engine, config, created["id"] + 1000, {"active": True}, partial=True)
        async with engine.connect() as conn:
            stored = await flag_by_id(conn, created["id"])
            listed = (await flag_listing(conn, active=False)).results
        return created, duplicate.value, invalid.value, toggled, missing.value, stored, listed

    created, duplicate, invalid, toggled, missing, stored, listed = run(database_url, work)
    assert (duplicate.status, duplicate.fields) == (400, {"key": "already exists"})
    assert invalid.status == 400 and "rollout_percentage" in invalid.fields
    assert toggled["active"] is False and toggled["rollout_percentage"] == 25
    assert (missing.status, missing.code) == (404, "not_found")
    assert stored == toggled and [f["key"] for f in listed] == ["checkout"]
