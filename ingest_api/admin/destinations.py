"""Admin webhook destinations: list, create, read, replace, patch, delete, replay, dead letters.

The rules of a definition and the delivery itself live in eventtrack/streaming/ (the delivery worker
is its own process, `eventtrack deliver`); these are the handlers over them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.clock import InvalidTimestamp, parse_timestamp
from eventtrack.errors import ApiError
from eventtrack.streaming import destinations as store
from ingest_api.admin.http import admin_only, check_unknown_params, json_object, json_response, path_id
from ingest_api.admin.pagination import DEFAULT_LIMIT, Cursor, Slice
from ingest_api.admin.rows import delete_by_id, fetch_by_id, id_order_response, id_order_rows, json_row, write_row
from ingest_api.state import AppState

_NOT_FOUND = ApiError.of("not_found", "No destination has this id.", {"id": "unknown"})
_SELECT = sa.text(f"SELECT {', '.join(store.COLUMNS)} FROM destinations WHERE id = :id")
# A resume forgets the failures that paused the destination; a pause says who paused it.
_RESUMED = ("consecutive_failures = 0", "failing_since = NULL", "next_attempt_at = NULL", "paused_reason = NULL")


def _destination_id(request: Request) -> int:
    return path_id(request, "destination_id", _NOT_FOUND)


def _invalid(err: store.DestinationError) -> ApiError:
    return ApiError.of(
        "validation_error", "The destination is invalid: " + ", ".join(sorted(err.fields)) + ".", err.fields
    )


async def destination_json(conn: AsyncConnection, row: Mapping[str, Any]) -> dict[str, Any]:
    """A destination (a row of COLUMNS) as the API shows it, with its lag (docs/operations.md "Streaming")."""
    body = json_row(dict(row))
    lag = await store.lag(conn, body["cursor_seq"], body["event_types"], body["filters"])
    body["lag"] = {"events": lag.events, "seconds": round(lag.seconds, 3)}
    return body


async def destination_listing(
    conn: AsyncConnection, *, limit: int = DEFAULT_LIMIT, cursor: Cursor | None = None
) -> Slice:
    part = await id_order_rows(
        conn,
        select=f"SELECT {', '.join(store.COLUMNS)} FROM destinations",
        where=[],
        params={},
        limit=limit,
        cursor=cursor,
        to_json=lambda row: row._mapping,
    )
    return dataclasses.replace(part, results=[await destination_json(conn, row) for row in part.results])


@admin_only
async def list_destinations(request: Request) -> Response:
    check_unknown_params(request, {"limit", "cursor"})
    return await id_order_response(request, destination_listing)


async def create_destination(conn: AsyncConnection, body: dict[str, Any]) -> dict[str, Any]:
    """Stores a new destination; it delivers the events that arrive from now on (replay for older ones)."""
    try:
        fields = store.parse_definition(body, partial=False)
    except store.DestinationError as err:
        raise _invalid(err) from None
    fields["cursor_seq"] = await store.newest_seq(conn)
    if fields.get("status") == "paused":
        fields["paused_reason"] = "created paused"
    return await destination_json(
        conn, (await write_row(conn, "destinations", fields, jsonb=(), returning=store.COLUMNS))._mapping
    )


@admin_only
async def create(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    body = await json_object(request)
    async with state.engine.begin() as conn:
        return json_response(await create_destination(conn, body), 201)


@admin_only
async def get_destination(request: Request) -> Response:
    async with request.app.state.eventtrack.engine.connect() as conn:
        row = await fetch_by_id(conn, _SELECT, _destination_id(request), _NOT_FOUND)
        return json_response(await destination_json(conn, row._mapping))


async def update_destination(
    conn: AsyncConnection, destination_id: int, body: dict[str, Any], *, partial: bool
) -> dict[str, Any]:
    """Replaces (or, `partial`, patches) a destination; a change of status pauses or resumes it."""
    existing = await fetch_by_id(conn, _SELECT, destination_id, _NOT_FOUND)
    try:
        fields = store.parse_definition(body, partial=partial)
    except store.DestinationError as err:
        raise _invalid(err) from None
    if not partial and "secret" not in body:
        del fields["secret"]  # kept: a receiver's check would fail with a new one nobody was told
    also = ["updated_at = now()"]
    status = fields.get("status", existing.status if partial else "active")
    fields["status"] = status
    if status == "active" and existing.status == "paused":
        also += [*_RESUMED, "generation = generation + 1"]
    elif status == "paused" and existing.status == "active":
        fields["paused_reason"] = "paused by an admin"
    row = await write_row(
        conn, "destinations", fields, jsonb=(), returning=store.COLUMNS, row_id=destination_id, also=also
    )
    return await destination_json(conn, row._mapping)


async def _update(request: Request, *, partial: bool) -> Response:
    destination_id = _destination_id(request)
    body = await json_object(request)
    async with request.app.state.eventtrack.engine.begin() as conn:
        return json_response(await update_destination(conn, destination_id, body, partial=partial))


# PUT: the whole definition (a secret left out is kept); PATCH: the body's fields over the stored ones.
replace_destination = admin_only(functools.partial(_update, partial=False))
patch_destination = admin_only(functools.partial(_update, partial=True))


@admin_only
async def delete_destination(request: Request) -> Response:
    return await delete_by_id(request, "destinations", _destination_id(request), _NOT_FOUND)


async def replay_from(conn: AsyncConnection, destination_id: int, start: Any) -> dict[str, Any]:
    """Delivers again every event from `start`: an event's seq (that one included), or an ISO 8601 time
    (every event received since)."""
    if isinstance(start, int) and not isinstance(start, bool) and 0 <= start < 2**63:
        after = max(start - 1, 0)
    elif isinstance(start, str):
        try:
            after = await store.seq_before(conn, parse_timestamp(start))
        except InvalidTimestamp as exc:
            raise ApiError.of("validation_error", f"from {exc}.", {"from": str(exc)}) from None
    else:
        raise ApiError.of(
            "validation_error",
            "from must be an event's seq (an integer) or an ISO 8601 time.",
            {"from": "an integer seq or an ISO 8601 time"},
        )
    if not await store.replay(conn, destination_id, after):
        raise _NOT_FOUND
    return await destination_json(conn, (await fetch_by_id(conn, _SELECT, destination_id, _NOT_FOUND))._mapping)


@admin_only
async def replay(request: Request) -> Response:
    destination_id = _destination_id(request)
    body = await json_object(request)
    unknown = sorted(set(body) - {"from"})
    if unknown or "from" not in body:
        fields = {k: "unknown field" for k in unknown} | ({} if "from" in body else {"from": "required"})
        raise ApiError.of("validation_error", 'The body is {"from": <seq or time>}.', fields)
    async with request.app.state.eventtrack.engine.begin() as conn:
        return json_response(await replay_from(conn, destination_id, body["from"]))


async def dead_letter_listing(
    conn: AsyncConnection, *, destination_id: int, limit: int = DEFAULT_LIMIT, cursor: Cursor | None = None
) -> Slice:
    return await id_order_rows(
        conn,
        select="SELECT id, destination_id, first_seq, last_seq, events, event_uuids, status, response_body, created_at"
        " FROM destination_dead_letters",
        where=["destination_id = :destination_id"],
        params={"destination_id": destination_id},
        limit=limit,
        cursor=cursor,
        to_json=lambda row: json_row(dict(row._mapping)) | {"event_uuids": [str(u) for u in row.event_uuids]},
    )


@admin_only
async def list_dead_letters(request: Request) -> Response:
    check_unknown_params(request, {"limit", "cursor"})
    destination_id = _destination_id(request)
    async with request.app.state.eventtrack.engine.connect() as conn:
        await fetch_by_id(conn, _SELECT, destination_id, _NOT_FOUND)
    return await id_order_response(request, dead_letter_listing, destination_id=destination_id)
