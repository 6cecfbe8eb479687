"""POST /api/v1/analytics/session/start/ and PUT /api/v1/analytics/session/{id}/end/."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.clock import InvalidTimestamp, parse_timestamp
from eventtrack.database import DATABASE_DOWN
from eventtrack.errors import ApiError, EventInvalid, unavailable
from eventtrack.uuid7 import uuid7
from ingest_api.capture_pipeline import refuse_event
from ingest_api.routes.body import read_json_object
from ingest_api.state import AppState
from ingest_api.validation import check_json_tree, client_time, distinct_id_field, optional_string

START = "session/start"
END = "session/end"
_SESSION_BODY_LIMIT = 64 * 1024

_INSERT = sa.text(
    """
    INSERT INTO sessions (session_id, distinct_id, device_id, app_version, os_name, os_version, properties, started_at)
    VALUES (:session_id, :distinct_id, :device_id, :app_version, :os_name, :os_version, CAST(:properties AS jsonb), :started_at)
    ON CONFLICT (session_id) DO NOTHING
    RETURNING started_at
    """
)
_SELECT = sa.text("SELECT distinct_id, started_at, ended_at FROM sessions WHERE session_id = :session_id")
_END = sa.text(
    """
    UPDATE sessions SET ended_at = :ended_at, end_reason = 'client'
    WHERE session_id = :session_id AND ended_at IS NULL
    RETURNING started_at, ended_at
    """
)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _session_time(body: dict[str, Any], name: str, received_at: datetime, state: AppState) -> datetime:
    """A client time (started_at / ended_at), under the rule of event timestamps (skew, future, retention)."""
    errors: dict[str, str] = {}
    parsed: dict[str, datetime | None] = {}
    for field in (name, "sent_at"):
        try:
            parsed[field] = parse_timestamp(body[field]) if body.get(field) is not None else None
        except InvalidTimestamp as exc:
            errors[field] = str(exc)
    if errors:
        raise EventInvalid("validation_error", "Invalid time fields: " + ", ".join(sorted(errors)) + ".", errors)
    return client_time(parsed[name], parsed["sent_at"], received_at, state.limits(received_at), name).timestamp


def _not_found() -> ApiError:
    return ApiError.of("session_not_found", fields={"session_id": "not a known session"})


async def _body(request: Request, state: AppState, endpoint: str, received_at: datetime) -> dict[str, Any]:
    decoded = await read_json_object(request, state, endpoint, _SESSION_BODY_LIMIT, received_at, allow_empty=True)
    return {} if decoded is None else decoded.value


def _validate_start(body: dict[str, Any], received_at: datetime, state: AppState) -> dict[str, Any]:
    errors: dict[str, str] = {}
    sanitize = True
    distinct_id = distinct_id_field(body.get("distinct_id"), errors, sanitize)
    optional = {
        n: optional_string(body.get(n), n, errors, sanitize)
        for n in ("device_id", "app_version", "os_name", "os_version")
    }
    session_id = body.get("session_id")
    if session_id is None:
        sid = uuid7()
    else:
        try:
            sid = uuid.UUID(session_id) if isinstance(session_id, str) and len(session_id) <= 64 else None
        except ValueError:
            sid = None
        if sid is None:
            errors["session_id"] = "must be a UUID string"
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        errors["properties"] = "must be a JSON object"
    else:
        checked = check_json_tree(properties, state.settings.max_properties_depth, sanitize)
        if isinstance(checked, str):
            errors["properties"] = checked
        else:
            properties = checked
    try:
        started_at = _session_time(body, "started_at", received_at, state)
    except EventInvalid as invalid:
        if not errors:
            raise  # alone, it keeps its own code (e.g. too_old)
        errors.update(invalid.fields)
    if errors:
        raise EventInvalid(
            "validation_error", "The session has invalid fields: " + ", ".join(sorted(errors)) + ".", errors
        )
    return {
        "session_id": sid,
        "distinct_id": distinct_id,
        "properties": orjson.dumps(properties).decode(),
        "started_at": started_at,
        **optional,
    }


async def start_session(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    received_at = datetime.now(UTC)
    body = await _body(request, state, START, received_at)
    try:
        params = _validate_start(body, received_at, state)
    except EventInvalid as invalid:
        await refuse_event(request, state, START, received_at, invalid, body)
    try:
        async with state.engine.begin() as conn:
            created = (await conn.execute(_INSERT, params)).first()
            if created is None:  # resent start: answer as the first time, if it is the same user's
                existing = (await conn.execute(_SELECT, {"session_id": params["session_id"]})).first()
    except DATABASE_DOWN:
        raise unavailable(state.settings.retry_after_seconds) from None
    if created is not None:
        return _json({"session_id": str(params["session_id"]), "started_at": created.started_at.isoformat()}, 201)
    if existing.distinct_id != params["distinct_id"]:
        raise ApiError.of("session_exists", fields={"session_id": "already used"})
    return _json({"session_id": str(params["session_id"]), "started_at": existing.started_at.isoformat()}, 200)


async def end_session(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    received_at = datetime.now(UTC)
    raw_id = request.path_params["session_id"]
    try:
        session_id = uuid.UUID(raw_id)
    except ValueError:
        raise _not_found() from None
    body = await _body(request, state, END, received_at)
    try:
        ended_at = _session_time(body, "ended_at", received_at, state)
    except EventInvalid as invalid:
        await refuse_event(request, state, END, received_at, invalid, body)
    try:
        async with state.engine.begin() as conn:
            existing = (await conn.execute(_SELECT, {"session_id": session_id})).first()
            if existing is None:
                raise _not_found()
            started_at, final_end = existing.started_at, existing.ended_at  # ended: the same answer as the first end
            if final_end is None and ended_at >= started_at:
                row = (await conn.execute(_END, {"session_id": session_id, "ended_at": ended_at})).first()
                started_at, final_end = row.started_at, row.ended_at
    except DATABASE_DOWN:
        raise unavailable(state.settings.retry_after_seconds) from None
    if final_end is None:
        invalid = EventInvalid(
            "end_before_start",
            f"ended_at {ended_at.isoformat()} is before the session started ({started_at.isoformat()}).",
            {"ended_at": "must not be before started_at"},
        )
        await refuse_event(request, state, END, received_at, invalid, body)
    return _json(
        {
            "session_id": str(session_id),
            "started_at": started_at.isoformat(),
            "ended_at": final_end.isoformat(),
            "duration_seconds": (final_end - started_at).total_seconds(),
        },
        200,
    )
