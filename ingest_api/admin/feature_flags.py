"""Admin feature-flag management: list, create, read, replace, patch, delete (the queries, and the handlers over them).

Every change refreshes this worker's config cache at once; the others see it within a second.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.errors import ApiError
from ingest_api.admin.http import admin_only, check_unknown_params, json_object, json_response, path_id
from ingest_api.admin.pagination import DEFAULT_LIMIT, Cursor, Slice
from ingest_api.admin.rows import delete_by_id, fetch_by_id, id_order_response, id_order_rows, one_response, write_row
from ingest_api.config_cache import FLAG_COLUMNS, ConfigCache, flag_json
from ingest_api.flags.definition import FlagDefinitionError, parse_flag_definition
from ingest_api.state import AppState


def _invalid(err: FlagDefinitionError) -> ApiError:
    return ApiError.of(
        "validation_error", "The flag definition is invalid: " + ", ".join(sorted(err.fields)) + ".", err.fields
    )


def _key_taken() -> ApiError:
    return ApiError.of("validation_error", "A flag with this key already exists.", {"key": "already exists"})


_FLAG_NOT_FOUND = ApiError.of("not_found", "No feature flag has this id.", {"id": "unknown"})


def _flag_id(request: Request) -> int:
    return path_id(request, "flag_id", _FLAG_NOT_FOUND)


_UPDATED = ("version = version + 1", "updated_at = now()")
_JSONB_FIELDS = ("variants", "conditions", "payload")


def flag_active(raw: str | None) -> bool | None:
    """The `active` filter: true, false or None (absent: any); 400 otherwise."""
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise ApiError.of("invalid_parameter", "active must be true or false.", {"active": "true or false"})
    return raw == "true"


async def flag_listing(
    conn: AsyncConnection, *, active: bool | None = None, limit: int = DEFAULT_LIMIT, cursor: Cursor | None = None
) -> Slice:
    """A page of flags in id order, as the API shows them."""
    where, params = [], {}
    if active is not None:
        where.append("active = :active")
        params["active"] = active
    select = f"SELECT {', '.join(FLAG_COLUMNS)} FROM feature_flags"
    return await id_order_rows(
        conn, select=select, where=where, params=params, limit=limit, cursor=cursor, to_json=flag_json
    )


@admin_only
async def list_feature_flags(request: Request) -> Response:
    check_unknown_params(request, {"limit", "cursor", "active"})
    return await id_order_response(request, flag_listing, active=flag_active(request.query_params.get("active")))


async def create_flag(engine: AsyncEngine, config: ConfigCache, body: dict[str, Any]) -> dict[str, Any]:
    """Validates and stores a new flag, refreshes this worker's config cache; the flag as the API shows it."""
    try:
        fields = parse_flag_definition(body)
    except FlagDefinitionError as err:
        raise _invalid(err) from None
    try:
        async with engine.begin() as conn:
            row = await write_row(conn, "feature_flags", fields, jsonb=_JSONB_FIELDS, returning=FLAG_COLUMNS)
    except IntegrityError:
        raise _key_taken() from None
    await config.refresh()
    return flag_json(row)


@admin_only
async def create_feature_flag(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    return json_response(await create_flag(state.engine, state.config, await json_object(request)), 201)


_SELECT_FLAG = sa.text(f"SELECT {', '.join(FLAG_COLUMNS)} FROM feature_flags WHERE id = :id")


async def flag_by_id(conn: AsyncConnection, flag_id: int) -> dict[str, Any]:
    """The flag as the API shows it; 404 when there is none."""
    return flag_json(await fetch_by_id(conn, _SELECT_FLAG, flag_id, _FLAG_NOT_FOUND))


@admin_only
async def get_feature_flag(request: Request) -> Response:
    return await one_response(request, flag_by_id, _flag_id(request))


@admin_only
async def delete_feature_flag(request: Request) -> Response:
    deleted = await delete_by_id(request, "feature_flags", _flag_id(request), _FLAG_NOT_FOUND)
    await request.app.state.eventtrack.config.refresh()
    return deleted


async def update_flag(
    engine: AsyncEngine, config: ConfigCache, flag_id: int, body: dict[str, Any], *, partial: bool
) -> dict[str, Any]:
    """Replaces (or, `partial`, patches) a flag and refreshes this worker's config cache; 404 when there is none."""
    try:
        async with engine.begin() as conn:
            existing = (await conn.execute(_SELECT_FLAG, {"id": flag_id})).first()
            if existing is None:
                raise _FLAG_NOT_FOUND
            try:
                fields = parse_flag_definition(body, partial_of=flag_json(existing) if partial else None)
            except FlagDefinitionError as err:
                raise _invalid(err) from None
            row = await write_row(
                conn,
                "feature_flags",
                fields,
                jsonb=_JSONB_FIELDS,
                returning=FLAG_COLUMNS,
                row_id=flag_id,
                also=_UPDATED,
            )
    except IntegrityError:
        raise _key_taken() from None
    await config.refresh()
    return flag_json(row)


async def _update_feature_flag(request: Request, *, partial: bool) -> Response:
    state: AppState = request.app.state.eventtrack
    flag_id = _flag_id(request)
    return json_response(
        await update_flag(state.engine, state.config, flag_id, await json_object(request), partial=partial)
    )


# PUT: the body is the whole definition; PATCH: the body's fields over the stored one.
replace_feature_flag = admin_only(functools.partial(_update_feature_flag, partial=False))
patch_feature_flag = admin_only(functools.partial(_update_feature_flag, partial=True))
