"""The I/O of the queries that run on ClickHouse while it lags Postgres (eventtrack/analytics/hybrid.py):
the split at this moment, and the arrivals it has not loaded yet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from eventtrack import clickhouse
from eventtrack.analytics.hybrid import Split, query_settings, unloaded_data, unloaded_rows_sql
from eventtrack.partitions import retention_cutoff
from ingest_api.state import AppState


async def current_split(state: AppState, conn: AsyncConnection) -> tuple[Any, clickhouse.Target, Split]:
    """The client, the target and the split now. The erasures are read after the watermark: an erasure the
    loader applies in between is then either still queued (and left out here) or already gone from ClickHouse."""
    client, target = await anyio.to_thread.run_sync(state.clickhouse)
    loaded, _ = await anyio.to_thread.run_sync(clickhouse.watermark, client, target)
    erased = [i for (ids,) in await conn.execute(sa.text("SELECT distinct_ids FROM clickhouse_erasures")) for i in ids]
    kept: tuple[str, ...] = ()
    if erased:  # what they sent after their erasure and ClickHouse has loaded: left in
        rows = await conn.exec_driver_sql(clickhouse.KEPT_AFTER_ERASURE_SQL, {"ids": erased, "loaded": loaded})
        kept = tuple(u for (u,) in rows)
    cutoff = retention_cutoff(datetime.now(UTC), state.settings.events_retention_days)
    return client, target, Split(loaded=loaded, cutoff=cutoff, erased=erased, kept=kept)


async def unloaded_rows(
    conn: AsyncConnection, split: Split, bounds: str = "", params: dict[str, Any] | None = None
) -> str:
    """The arrivals ClickHouse has not loaded yet inside retention (and `bounds`), as hybrid.unloaded_data."""
    sql = sa.text(unloaded_rows_sql(bounds))
    rows = (await conn.execute(sql, {**split.postgres_params(), **(params or {})})).all()
    return unloaded_data([tuple(r) for r in rows])


async def clickhouse_rows(client, sql: str, params: dict[str, Any]) -> list[tuple]:
    """A ClickHouse query's rows, off the event loop (clickhouse-connect is synchronous)."""
    settings = query_settings(sql)
    return await anyio.to_thread.run_sync(lambda: client.query(sql, parameters=params, settings=settings).result_rows)
