"""Admin feature-flag management: list, create, read, replace, patch, delete.

Every change refreshes this worker's config cache at once; the others see it within a second.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response

from ingest_api.admin.http import admin_only, check_unknown_params, json_object, json_response, path_id
from ingest_api.admin.rows import delete_by_id, id_order_page, row_by_id
from ingest_api.config_cache import FLAG_COLUMNS, flag_json
from ingest_api.errors import ApiError
from ingest_api.flags.definition import FlagDefinitionError, parse_flag_definition
from ingest_api.state import AppState


def _invalid(err: FlagDefinitionError) -> ApiError:
    return ApiError(400, "validation_error", "The flag definition is invalid: " + ", ".join(sorted(err.fields)) + ".", err.fields)


_FLAG_NOT_FOUND = ApiError(404, "not_found", "No feature flag has this id.", {"id": "unknown"})


def _flag_id(request: Request) -> int:
    return path_id(request, "flag_id", _FLAG_NOT_FOUND)


_RETURNING = "RETURNING " + ", ".join(FLAG_COLUMNS)
_JSONB_FIELDS = ("variants", "conditions", "payload")


def _db_params(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (orjson.dumps(v).decode() if k in _JSONB_FIELDS else v) for k, v in fields.items()}


@admin_only
async def list_feature_flags(request: Request) -> Response:
    check_unknown_params(request, {"limit", "cursor", "active"})
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
        fields = parse_flag_definition(await json_object(request))
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
    body = await json_object(request)
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
