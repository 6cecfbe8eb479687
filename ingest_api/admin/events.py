"""Admin listings of raw events and of sessions, newest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ingest_api.admin.http import admin_only, check_unknown_params, text_filters
from ingest_api.admin.rows import newest_first_page
from ingest_api.errors import ApiError

_EVENT_FIELDS = (
    "uuid, event_type, distinct_id, properties, device_id, session_id, app_version, os_name, os_version,"
    ' "timestamp", client_timestamp, sent_at, received_at'
)


@admin_only
async def list_events(request: Request) -> Response:
    check_unknown_params(request, {"event_type", "distinct_id", "session_id", "start", "end", "limit", "cursor"})
    where, params = text_filters(request, ("event_type", "distinct_id", "session_id"))
    return await newest_first_page(
        request, select=f"SELECT {_EVENT_FIELDS} FROM events", where=where, params=params, time_column='"timestamp"', id_column="uuid"
    )


_SESSION_FIELDS = (
    "session_id, distinct_id, device_id, app_version, os_name, os_version, properties, started_at, ended_at,"
    " end_reason, EXTRACT(EPOCH FROM ended_at - started_at)::float8 AS duration_seconds,"
    " CASE WHEN ended_at IS NULL THEN 'active' ELSE 'ended' END AS status"
)


@admin_only
async def list_sessions(request: Request) -> Response:
    check_unknown_params(request, {"distinct_id", "status", "start", "end", "limit", "cursor"})
    where, params = text_filters(request, ("distinct_id",))
    status = request.query_params.get("status")
    if status not in (None, "", "active", "ended"):
        raise ApiError(400, "invalid_parameter", "status must be active or ended.", {"status": "active or ended"})
    if status == "active":
        where.append("ended_at IS NULL")
    elif status == "ended":
        where.append("ended_at IS NOT NULL")
    return await newest_first_page(
        request, select=f"SELECT {_SESSION_FIELDS} FROM sessions", where=where, params=params, time_column="started_at", id_column="session_id"
    )
