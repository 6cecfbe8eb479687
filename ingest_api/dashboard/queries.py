"""The dashboard's own reads: the rejected-events page. Everything the JSON API also shows comes from the admin query
functions (ingest_api/admin/), so a page and its endpoint answer from one query."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

_REJECTED = """
SELECT id, received_at, endpoint, reason, detail, fields, event_index, payload_bytes, payload_truncated, replayed_at,
       substring(payload FROM 1 FOR 400) AS preview
FROM rejected_events
WHERE {where}
ORDER BY id DESC LIMIT :limit
"""
_REJECTION_REASONS = sa.text("SELECT DISTINCT reason FROM rejected_events ORDER BY 1 LIMIT 100")


async def rejected_events(
    conn: AsyncConnection, *, reason: str | None, show_all: bool, before: int | None, limit: int
) -> list[Any]:
    """Rejected events newest first (by id, below `before`): only those not replayed yet unless `show_all`,
    only those of `reason` when given; the first 400 bytes of each payload as `preview`."""
    where, params = ["true"], {"limit": limit}
    if not show_all:
        where.append("replayed_at IS NULL")
    if reason:
        where.append("reason = :reason")
        params["reason"] = reason.replace("\x00", "")
    if before is not None:
        where.append("id < :before")
        params["before"] = before
    return (await conn.execute(sa.text(_REJECTED.format(where=" AND ".join(where))), params)).all()


async def rejection_reasons(conn: AsyncConnection) -> list[str]:
    """The reasons rejected events were refused for (the first 100, sorted): the page's filter choices."""
    return [r.reason for r in (await conn.execute(_REJECTION_REASONS)).all()]
