"""The row reads the admin handlers share: one row by id, and keyset pages (newest first, or in id order)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from ingest_api.admin.http import base_url, json_response, time_param
from ingest_api.admin.pagination import ID, TIMESTAMP, UUID, decode_cursor, page, parse_limit
from ingest_api.errors import ApiError
from ingest_api.state import AppState


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


async def newest_first_page(
    request: Request, *, select: str, where: list[str], params: dict[str, Any], time_column: str, id_column: str
) -> Response:
    """A keyset page of `select` ordered newest first by (time_column, id_column): the events, sessions and audit-log listings."""
    state: AppState = request.app.state.eventtrack
    limit = parse_limit(request.query_params.get("limit"))
    cursor = decode_cursor(request.query_params.get("cursor"), (TIMESTAMP, UUID))
    start, end = time_param(request, "start"), time_param(request, "end")
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
        base_url=base_url(request),
        params=dict(request.query_params),
    )
    return json_response(body)


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
    body = page(rows, limit=limit, cursor=cursor, key_of=lambda r: (r["id"],), base_url=base_url(request), params=dict(request.query_params))
    return json_response(body)
