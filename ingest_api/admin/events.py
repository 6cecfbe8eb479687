"""Admin listings of raw events and of sessions, newest first: the queries, and the handlers over them."""

from __future__ import annotations

from typing import Unpack

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.errors import ApiError
from ingest_api.admin.http import admin_only, check_unknown_params, text_param
from ingest_api.admin.pagination import Slice
from ingest_api.admin.rows import NewestFirstWindow, newest_first_response, newest_first_rows

_EVENT_FIELDS = (
    "uuid, event_type, distinct_id, properties, device_id, session_id, app_version, os_name, os_version,"
    ' "timestamp", client_timestamp, sent_at, received_at'
)


def _equal_to(values: dict[str, str | None]) -> tuple[list[str], dict[str, str]]:
    """`name = :name` conditions for the values that are set."""
    given = {k: v for k, v in values.items() if v is not None}
    return [f"{k} = :{k}" for k in given], given


async def event_listing(
    conn: AsyncConnection,
    *,
    event_type: str | None = None,
    distinct_id: str | None = None,
    session_id: str | None = None,
    **window: Unpack[NewestFirstWindow],
) -> Slice:
    """A page of raw events, newest first, with the given values; times in [start, end)."""
    where, params = _equal_to({"event_type": event_type, "distinct_id": distinct_id, "session_id": session_id})
    return await newest_first_rows(
        conn, select=f"SELECT {_EVENT_FIELDS} FROM events", where=where, params=params, time_column='"timestamp"', id_column="uuid",
        **window,
    )  # fmt: skip


@admin_only
async def list_events(request: Request) -> Response:
    check_unknown_params(request, {"event_type", "distinct_id", "session_id", "start", "end", "limit", "cursor"})
    event_type, distinct_id, session_id = (
        text_param(request, name) for name in ("event_type", "distinct_id", "session_id")
    )
    return await newest_first_response(
        request, event_listing, event_type=event_type, distinct_id=distinct_id, session_id=session_id
    )


_SESSION_FIELDS = (
    "session_id, distinct_id, device_id, app_version, os_name, os_version, properties, started_at, ended_at,"
    " end_reason, EXTRACT(EPOCH FROM ended_at - started_at)::float8 AS duration_seconds,"
    " CASE WHEN ended_at IS NULL THEN 'active' ELSE 'ended' END AS status"
)
SESSION_STATUSES = ("active", "ended")


def session_status(raw: str | None) -> str | None:
    """The status filter: active, ended, or None (absent or empty: any); 400 otherwise."""
    if raw not in (None, "", *SESSION_STATUSES):
        raise ApiError.of("invalid_parameter", "status must be active or ended.", {"status": "active or ended"})
    return raw or None


async def session_listing(
    conn: AsyncConnection,
    *,
    distinct_id: str | None = None,
    status: str | None = None,
    **window: Unpack[NewestFirstWindow],
) -> Slice:
    """A page of sessions, newest first by start; `status` is "active", "ended" or None (any)."""
    where, params = _equal_to({"distinct_id": distinct_id})
    if status == "active":
        where.append("ended_at IS NULL")
    elif status == "ended":
        where.append("ended_at IS NOT NULL")
    return await newest_first_rows(
        conn, select=f"SELECT {_SESSION_FIELDS} FROM sessions", where=where, params=params, time_column="started_at", id_column="session_id",
        **window,
    )  # fmt: skip


@admin_only
async def list_sessions(request: Request) -> Response:
    check_unknown_params(request, {"distinct_id", "status", "start", "end", "limit", "cursor"})
    distinct_id = text_param(request, "distinct_id")
    status = session_status(request.query_params.get("status"))
    return await newest_first_response(request, session_listing, distinct_id=distinct_id, status=status)
