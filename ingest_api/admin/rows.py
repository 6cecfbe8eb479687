"""The row reads the admin queries share: one row by id, and keyset pages (newest first, or in id order)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.errors import ApiError
from ingest_api.admin.http import base_url, json_bytes, json_response, time_param
from ingest_api.admin.pagination import (
    DEFAULT_LIMIT,
    ID,
    TIMESTAMP,
    UUID,
    Cursor,
    Slice,
    decode_cursor,
    page_body,
    page_slice,
    parse_limit,
)

# The sort key of the newest-first listings: (time, id).
NEWEST_FIRST_KEY = (TIMESTAMP, UUID)
ID_ORDER_KEY = (ID,)


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its times and uuids as the API writes them (ISO 8601, text)."""
    return {
        k: v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v
        for k, v in row.items()
    }


async def fetch_by_id(conn: AsyncConnection, select: sa.TextClause, row_id: int, not_found: ApiError) -> Any:
    """The row `select` finds for `:id`, or `not_found` raised."""
    row = (await conn.execute(select, {"id": row_id})).first()
    if row is None:
        raise not_found
    return row


async def one_response(
    request: Request, read: Callable[[AsyncConnection, int], Awaitable[dict[str, Any]]], row_id: int
) -> Response:
    """The answer of a handler reading one row by id: `read(conn, row_id)` (e.g. `flag_by_id`, which 404s)."""
    async with request.app.state.eventtrack.engine.connect() as conn:
        return json_response(await read(conn, row_id))


async def write_row(
    conn: AsyncConnection,
    table: str,
    fields: dict[str, Any],
    *,
    jsonb: Collection[str],
    returning: Iterable[str],
    row_id: int | None = None,
    also: Iterable[str] = (),
) -> Any:
    """Inserts `fields` into `table` or, given `row_id`, updates that row (`also`: more SET clauses); returns the
    row's `returning` columns. Columns in `jsonb` are sent as JSON text and cast."""
    params = {k: (json_bytes(v).decode() if k in jsonb else v) for k, v in fields.items()}
    values = {c: f"CAST(:{c} AS jsonb)" if c in jsonb else f":{c}" for c in fields}
    if row_id is None:
        sql = f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(values.values())})"
    else:
        sets = [f"{c} = {v}" for c, v in values.items()]
        sql = f"UPDATE {table} SET {', '.join([*sets, *also])} WHERE id = :id"
        params["id"] = row_id
    return (await conn.execute(sa.text(f"{sql} RETURNING {', '.join(returning)}"), params)).one()


async def delete_by_id(request: Request, table: str, row_id: int, not_found: ApiError) -> Response:
    """Deletes the row of `table` with this id: the 204 of a delete handler, or `not_found` raised."""
    async with request.app.state.eventtrack.engine.begin() as conn:
        deleted = (
            await conn.execute(sa.text(f"DELETE FROM {table} WHERE id = :id RETURNING id"), {"id": row_id})
        ).first()
    if deleted is None:
        raise not_found
    return Response(status_code=204)


class NewestFirstWindow(TypedDict, total=False):
    """Which page of a newest-first listing (`newest_first_rows`' own arguments, for the query functions over it)."""

    start: datetime | None  # times in [start, end)
    end: datetime | None
    limit: int
    cursor: Cursor | None


async def newest_first_rows(
    conn: AsyncConnection,
    *,
    select: str,
    where: list[str],
    params: dict[str, Any],
    time_column: str,
    id_column: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: Cursor | None = None,
) -> Slice:
    """A keyset page of `select` ordered newest first by (time_column, id_column), rows as `json_row` writes them."""
    where, params = list(where), dict(params)
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
    rows = [dict(r._mapping) for r in (await conn.execute(sa.text(sql), params)).all()]
    time_key, id_key = time_column.strip('"'), id_column
    part = page_slice(rows, limit=limit, cursor=cursor, key_of=lambda r: (r[time_key].isoformat(), str(r[id_key])))
    return Slice([json_row(r) for r in part.results], part.next, part.previous)


def newest_first_params(request: Request) -> tuple[int, Cursor | None, datetime | None, datetime | None]:
    """A newest-first listing's `limit`, `cursor`, `start` and `end`, checked in that order."""
    limit = parse_limit(request.query_params.get("limit"))
    cursor = decode_cursor(request.query_params.get("cursor"), NEWEST_FIRST_KEY)
    return limit, cursor, time_param(request, "start"), time_param(request, "end")


async def newest_first_response(request: Request, listing: Callable[..., Awaitable[Slice]], **filters: Any) -> Response:
    """The answer of a newest-first listing handler: `listing(conn, **filters)` for the request's limit, cursor,
    start and end (`newest_first_rows` itself, or a query function over it such as `event_listing`)."""
    limit, cursor, start, end = newest_first_params(request)
    async with request.app.state.eventtrack.engine.connect() as conn:
        part = await listing(conn, start=start, end=end, limit=limit, cursor=cursor, **filters)
    return json_response(listing_body(request, part))


async def id_order_rows(
    conn: AsyncConnection,
    *,
    select: str,
    where: list[str],
    params: dict[str, Any],
    limit: int,
    cursor: Cursor | None,
    to_json,
) -> Slice:
    """A keyset page of `select` in id order, rows as `to_json` writes them: the feature-flag and experiment listings."""
    where, params = list(where), dict(params)
    if cursor:
        where.append("id > :c_id" if cursor.forward else "id < :c_id")
        params["c_id"] = cursor.key[0]
    order = "ASC" if cursor is None or cursor.forward else "DESC"
    sql = select + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY id {order} LIMIT {limit + 1}"
    rows = [to_json(r) for r in (await conn.execute(sa.text(sql), params)).all()]
    return page_slice(rows, limit=limit, cursor=cursor, key_of=lambda r: (r["id"],))


async def id_order_response(request: Request, listing: Callable[..., Awaitable[Slice]], **filters: Any) -> Response:
    """The answer of an id-order listing handler: `listing(conn, **filters)` for the request's limit and cursor."""
    limit = parse_limit(request.query_params.get("limit"))
    cursor = decode_cursor(request.query_params.get("cursor"), ID_ORDER_KEY)
    async with request.app.state.eventtrack.engine.connect() as conn:
        part = await listing(conn, limit=limit, cursor=cursor, **filters)
    return json_response(listing_body(request, part))


def listing_body(request: Request, part: Slice) -> dict[str, Any]:
    """A listing's answer to `request`: its page, linked to the neighbouring pages with the request's parameters."""
    return page_body(part, base_url=base_url(request), params=dict(request.query_params))
