"""Admin API routes: events, sessions, feature-flag management. Every route requires an admin key."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest_api.admin.keys import bearer_token, find_key
from ingest_api.admin.pagination import ID, TIMESTAMP, UUID, decode_cursor, page, parse_limit
from ingest_api.clock import InvalidTimestamp, parse_timestamp
from ingest_api.config_cache import FLAG_COLUMNS, flag_json
from ingest_api.decode import parse_json, read_body
from ingest_api.errors import ApiError, unavailable
from ingest_api.flags.definition import FlagDefinitionError, parse_flag_definition
from ingest_api.routing import Handler, method_routes
from ingest_api.state import AppState

ADMIN = "/api/v1/analytics/admin"
_DB_DOWN = (OperationalError, InterfaceError, TimeoutError)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    try:
        content = orjson.dumps(body, default=_default)
    except TypeError:  # jsonb can hold integers beyond 64 bits, which orjson refuses
        content = json.dumps(body, default=_default, ensure_ascii=False).encode()
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError


def admin_only(handler: Handler) -> Handler:
    """401 unless `Authorization: Bearer <active admin key>`. Keys are checked against the in-process cache."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        state: AppState = request.app.state.eventtrack
        snapshot = state.config.snapshot
        if not snapshot.loaded:
            raise unavailable(state.settings.retry_after_seconds, "Configuration not loaded yet; retry.")
        token = bearer_token(request.headers.get("authorization"))
        if token is None or find_key(token, snapshot.admin_keys) is None:
            raise ApiError(
                401,
                "unauthorized",
                "A valid admin API key is required: send `Authorization: Bearer <key>`.",
                {"authorization": "missing, malformed, unknown or revoked key"},
                {"WWW-Authenticate": "Bearer"},
            )
        try:
            return await handler(request)
        except _DB_DOWN:
            raise unavailable(state.settings.retry_after_seconds) from None

    return wrapped


# --- query parameters --------------------------------------------------------


def _time_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except InvalidTimestamp as exc:
        raise ApiError(400, "invalid_parameter", f"{name} {exc}.", {name: str(exc)}) from None


def _text_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and (len(value) > 200 or "\x00" in value):
        raise ApiError(400, "invalid_parameter", f"{name} is too long or holds NUL characters.", {name: "invalid"})
    return value or None


def _check_unknown_params(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ApiError(400, "invalid_parameter", "Unknown query parameters: " + ", ".join(unknown) + ".", {k: "unknown parameter" for k in unknown})


def _base_url(request: Request) -> str:
    return str(request.url.replace(query=""))


# --- one row by id (flags, experiments, saved funnels) -------------------------


async def row_by_id(request: Request, select: sa.TextClause, row_id: int, not_found: ApiError) -> Any:
    """The row `select` finds for `:id`, or `not_found` raised."""
    async with request.app.state.eventtrack.engine.connect() as conn:
        row = (await conn.execute(select, {"id": row_id})).first()
    if row is None:
        raise not_found
    return row


async def delete_by_id(request: Request, table: str, row_id: int, not_found: ApiError) -> None:
    async with request.app.state.eventtrack.engine.begin() as conn:
        deleted = (await conn.execute(sa.text(f"DELETE FROM {table} WHERE id = :id RETURNING id"), {"id": row_id})).first()
    if deleted is None:
        raise not_found


# --- events -------------------------------------------------------------------

_EVENT_FIELDS = (
    "uuid, event_type, distinct_id, properties, device_id, session_id, app_version, os_name, os_version,"
    ' "timestamp", client_timestamp, sent_at, received_at'
)


async def _newest_first_page(
    request: Request, *, select: str, where: list[str], params: dict[str, Any], time_column: str, id_column: str
) -> Response:
    """A keyset page of `select` ordered newest first by (time_column, id_column): the events and sessions listings."""
    state: AppState = request.app.state.eventtrack
    limit = parse_limit(request.query_params.get("limit"))
    cursor = decode_cursor(request.query_params.get("cursor"), (TIMESTAMP, UUID))
    start, end = _time_param(request, "start"), _time_param(request, "end")
    if start:
        where.append(f"{time_column} >= :start")
        params["start"] = start
    if end:
        where.append(f"{time_column} < :end")
        params["end"] = end
    order = "DESC"
    if cursor:
        params["c_ts"], params["c_id"] = cursor.key
        # Newest first: "forward" means older rows.
        where.append(f"({time_column}, {id_column}) {'<' if cursor.forward else '>'} (:c_ts, :c_id)")
        order = "DESC" if cursor.forward else "ASC"
    sql = select
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {time_column} {order}, {id_column} {order} LIMIT {limit + 1}"
    async with state.engine.connect() as conn:
        rows = [dict(r._mapping) for r in (await conn.execute(sa.text(sql), params)).all()]
    time_key, id_key = time_column.strip('"'), id_column
    body = page(
        rows,
        limit=limit,
        cursor=cursor,
        key_of=lambda r: (r[time_key].isoformat(), str(r[id_key])),
        base_url=_base_url(request),
        params=dict(request.query_params),
    )
    return json_response(body)


@admin_only
async def list_events(request: Request) -> Response:
    _check_unknown_params(request, {"event_type", "distinct_id", "session_id", "start", "end", "limit", "cursor"})
    where, params = [], {}
    for name in ("event_type", "distinct_id", "session_id"):
        value = _text_param(request, name)
        if value is not None:
            where.append(f"{name} = :{name}")
            params[name] = value
    return await _newest_first_page(
        request, select=f"SELECT {_EVENT_FIELDS} FROM events", where=where, params=params, time_column='"timestamp"', id_column="uuid"
    )


# --- sessions -------------------------------------------------------------------

_SESSION_FIELDS = (
    "session_id, distinct_id, device_id, app_version, os_name, os_version, properties, started_at, ended_at,"
    " end_reason, EXTRACT(EPOCH FROM ended_at - started_at)::float8 AS duration_seconds,"
    " CASE WHEN ended_at IS NULL THEN 'active' ELSE 'ended' END AS status"
)


@admin_only
async def list_sessions(request: Request) -> Response:
    _check_unknown_params(request, {"distinct_id", "status", "start", "end", "limit", "cursor"})
    where, params = [], {}
    distinct_id = _text_param(request, "distinct_id")
    if distinct_id:
        where.append("distinct_id = :distinct_id")
        params["distinct_id"] = distinct_id
    status = request.query_params.get("status")
    if status not in (None, "", "active", "ended"):
        raise ApiError(400, "invalid_parameter", "status must be active or ended.", {"status": "active or ended"})
    if status == "active":
        where.append("ended_at IS NULL")
    elif status == "ended":
        where.append("ended_at IS NOT NULL")
    return await _newest_first_page(
        request, select=f"SELECT {_SESSION_FIELDS} FROM sessions", where=where, params=params, time_column="started_at", id_column="session_id"
    )


# --- feature flags ------------------------------------------------------------


JSON_BODY_LIMIT = 256 * 1024


async def _json_object(request: Request) -> dict[str, Any]:
    value, _ = parse_json(await read_body(request, JSON_BODY_LIMIT))
    if not isinstance(value, dict):
        raise ApiError(400, "not_an_object", "The body must be a JSON object.", {"body": "must be an object"})
    return value


def _invalid(err: FlagDefinitionError) -> ApiError:
    return ApiError(400, "validation_error", "The flag definition is invalid: " + ", ".join(sorted(err.fields)) + ".", err.fields)


_FLAG_NOT_FOUND = ApiError(404, "not_found", "No feature flag has this id.", {"id": "unknown"})


def _flag_id(request: Request) -> int:
    try:
        flag_id = int(request.path_params["flag_id"])
    except ValueError:
        flag_id = -1
    if not 0 < flag_id < 2**63:
        raise _FLAG_NOT_FOUND
    return flag_id


_RETURNING = "RETURNING " + ", ".join(FLAG_COLUMNS)
_JSONB_FIELDS = ("variants", "conditions", "payload")


def _db_params(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (orjson.dumps(v).decode() if k in _JSONB_FIELDS else v) for k, v in fields.items()}


async def id_order_page(request: Request, *, select: str, where: list[str], params: dict[str, Any], to_json) -> Response:
    """A keyset page of `select` in id order: the feature-flag and experiment listings."""
    state: AppState = request.app.state.eventtrack
    limit = parse_limit(request.query_params.get("limit"))
    cursor = decode_cursor(request.query_params.get("cursor"), (ID,))
    if cursor:
        where.append("id > :c_id" if cursor.forward else "id < :c_id")
        params["c_id"] = cursor.key[0]
    order = "ASC" if cursor is None or cursor.forward else "DESC"
    sql = select + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY id {order} LIMIT {limit + 1}"
    async with state.engine.connect() as conn:
        rows = [to_json(r) for r in (await conn.execute(sa.text(sql), params)).all()]
    body = page(rows, limit=limit, cursor=cursor, key_of=lambda r: (r["id"],), base_url=_base_url(request), params=dict(request.query_params))
    return json_response(body)


@admin_only
async def list_feature_flags(request: Request) -> Response:
    _check_unknown_params(request, {"limit", "cursor", "active"})
    where, params = [], {}
    active = request.query_params.get("active")
    if active is not None:
        if active not in ("true", "false"):
            raise ApiError(400, "invalid_parameter", "active must be true or false.", {"active": "true or false"})
        where.append("active = :active")
        params["active"] = active == "true"
    return await id_order_page(request, select=f"SELECT {', '.join(FLAG_COLUMNS)} FROM feature_flags", where=where, params=params, to_json=flag_json)


@admin_only
async def create_feature_flag(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    try:
        fields = parse_flag_definition(await _json_object(request))
    except FlagDefinitionError as err:
        raise _invalid(err) from None
    columns = list(fields)
    sql = (
        f"INSERT INTO feature_flags ({', '.join(columns)}) VALUES ("
        + ", ".join(f"CAST(:{c} AS jsonb)" if c in _JSONB_FIELDS else f":{c}" for c in columns)
        + f") {_RETURNING}"
    )
    try:
        async with state.engine.begin() as conn:
            row = (await conn.execute(sa.text(sql), _db_params(fields))).one()
    except IntegrityError:
        raise ApiError(400, "validation_error", "A flag with this key already exists.", {"key": "already exists"}) from None
    await state.config.refresh()
    return json_response(flag_json(row), 201)


_SELECT_FLAG = sa.text(f"SELECT {', '.join(FLAG_COLUMNS)} FROM feature_flags WHERE id = :id")


@admin_only
async def get_feature_flag(request: Request) -> Response:
    return json_response(flag_json(await row_by_id(request, _SELECT_FLAG, _flag_id(request), _FLAG_NOT_FOUND)))


@admin_only
async def delete_feature_flag(request: Request) -> Response:
    await delete_by_id(request, "feature_flags", _flag_id(request), _FLAG_NOT_FOUND)
    await request.app.state.eventtrack.config.refresh()
    return Response(status_code=204)


async def _update_feature_flag(request: Request, *, partial: bool) -> Response:
    state: AppState = request.app.state.eventtrack
    flag_id = _flag_id(request)
    body = await _json_object(request)
    try:
        async with state.engine.begin() as conn:
            existing = (await conn.execute(_SELECT_FLAG, {"id": flag_id})).first()
            if existing is None:
                raise _FLAG_NOT_FOUND
            try:
                fields = parse_flag_definition(body, partial_of=flag_json(existing) if partial else None)
            except FlagDefinitionError as err:
                raise _invalid(err) from None
            assignments = ", ".join(f"{c} = CAST(:{c} AS jsonb)" if c in _JSONB_FIELDS else f"{c} = :{c}" for c in fields)
            sql = f"UPDATE feature_flags SET {assignments}, version = version + 1, updated_at = now() WHERE id = :id {_RETURNING}"
            row = (await conn.execute(sa.text(sql), {**_db_params(fields), "id": flag_id})).one()
    except IntegrityError:
        raise ApiError(400, "validation_error", "A flag with this key already exists.", {"key": "already exists"}) from None
    await state.config.refresh()
    return json_response(flag_json(row))


# PUT: the body is the whole definition; PATCH: the body's fields over the stored one.
replace_feature_flag = admin_only(functools.partial(_update_feature_flag, partial=False))
patch_feature_flag = admin_only(functools.partial(_update_feature_flag, partial=True))


def admin_routes() -> list[Route]:
    from ingest_api.admin.aggregates import event_aggregates, event_counts  # they build on this module
    from ingest_api.admin.analytics import create_saved_funnel, delete_saved_funnel, funnel, get_saved_funnel, list_saved_funnels, retention
    from ingest_api.admin.experiments import experiment_routes

    return [
        *method_routes(f"{ADMIN}/events/", {"GET": list_events}),
        *method_routes(f"{ADMIN}/events/event_counts/", {"GET": event_counts}),
        *method_routes(f"{ADMIN}/event-aggregates/", {"GET": event_aggregates}),
        *method_routes(f"{ADMIN}/sessions/", {"GET": list_sessions}),
        *method_routes(f"{ADMIN}/feature-flags/", {"GET": list_feature_flags, "POST": create_feature_flag}),
        *method_routes(
            f"{ADMIN}/feature-flags/{{flag_id}}/",
            {"GET": get_feature_flag, "PUT": replace_feature_flag, "PATCH": patch_feature_flag, "DELETE": delete_feature_flag},
        ),
        *method_routes(f"{ADMIN}/funnels/", {"GET": funnel}),
        *method_routes(f"{ADMIN}/funnels/saved/", {"GET": list_saved_funnels, "POST": create_saved_funnel}),
        *method_routes(f"{ADMIN}/funnels/saved/{{funnel_id}}/", {"GET": get_saved_funnel, "DELETE": delete_saved_funnel}),
        *method_routes(f"{ADMIN}/retention/", {"GET": retention}),
        *experiment_routes(),
    ]
