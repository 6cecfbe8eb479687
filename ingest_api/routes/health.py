"""GET /healthz (the process is up) and GET /readyz (the database answers)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse

from eventtrack.errors import unavailable
from ingest_api.state import AppState


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    state: AppState = request.app.state.eventtrack
    try:
        async with asyncio.timeout(state.settings.db_connect_timeout_seconds + 1):
            async with state.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
    except Exception:  # any failure to answer means not ready
        raise unavailable(state.settings.retry_after_seconds, "The database is not reachable.") from None
    return JSONResponse({"status": "ready"})
