"""Admin routes of the privacy operations: erase a person, export a person, read the audit log."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from eventtrack.errors import ApiError
from ingest_api.admin.http import ADMIN, admin_only, check_unknown_params, json_response, text_param
from ingest_api.admin.keys import bearer_token, find_key
from ingest_api.admin.rows import newest_first_response, newest_first_rows
from ingest_api.privacy import store
from ingest_api.routing import method_routes
from ingest_api.state import AppState
from ingest_api.validation import MAX_ID_LENGTH

PERSONS = f"{ADMIN}/persons"
AUDIT_LOG = f"{ADMIN}/audit-log"
ACTIONS = ("erase_person", "export_person")


def _distinct_id(request: Request) -> str:
    """The person a privacy request names in its path (these requests take no query parameters)."""
    check_unknown_params(request, set())
    value = request.path_params["distinct_id"]
    if not 1 <= len(value) <= MAX_ID_LENGTH or "\x00" in value:
        raise ApiError.of(
            "invalid_parameter",
            f"distinct_id must be 1 to {MAX_ID_LENGTH} characters without NUL.",
            {"distinct_id": "invalid"},
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError.of("invalid_parameter", "distinct_id is not valid UTF-8.", {"distinct_id": "invalid"}) from None
    return value


def _key_id(request: Request) -> int | None:
    """The id of the admin key of the request (admin_only has checked it)."""
    state: AppState = request.app.state.eventtrack
    token = bearer_token(request.headers.get("authorization"))
    return find_key(token, state.config.snapshot.admin_keys) if token else None


@asynccontextmanager
async def _acting_on_person(request: Request) -> AsyncIterator[tuple[AsyncConnection, str, store.Actor]]:
    """A transaction for a privacy request: the person it names, and the admin acting (for the audit log)."""
    distinct_id = _distinct_id(request)
    async with request.app.state.eventtrack.engine.begin() as conn:
        yield conn, distinct_id, await store.actor_for(conn, _key_id(request))


@admin_only
async def erase_person(request: Request) -> Response:
    clickhouse = request.app.state.eventtrack.settings.clickhouse_url is not None
    async with _acting_on_person(request) as (conn, distinct_id, actor):
        result = await store.erase_person(conn, distinct_id, actor, clickhouse=clickhouse)
    return json_response(result)


@admin_only
async def export_person(request: Request) -> Response:
    """Streams the person's data as one JSON document, a page of rows at a time, from one snapshot."""
    # The audit row first, in its own transaction: an export that fails half-way is still recorded.
    async with _acting_on_person(request) as (conn, distinct_id, actor):
        _, ids = await store.person_ids(conn, distinct_id)
        counts = await store.export_counts(conn, ids)
        audit_id = await store.write_audit(
            conn, actor, "export_person", distinct_id, {"counts": counts, "distinct_ids": len(ids)}
        )
    head = {"distinct_id": distinct_id, "exported_at": datetime.now(UTC), "audit_id": audit_id}
    return StreamingResponse(_export_body(request.app.state.eventtrack, head), media_type="application/json")


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default)
    except TypeError:  # jsonb can hold integers beyond 64 bits, which orjson refuses
        return json.dumps(value, default=_default, ensure_ascii=False).encode()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # uuid, Decimal; jsonb integers beyond 64 bits are not expected in exports


async def _export_body(state: AppState, head: dict[str, Any]) -> AsyncIterator[bytes]:
    # The connection is opened here, when the body is sent, so that it is closed whatever happens to the
    # client; everything below reads one REPEATABLE READ snapshot.
    async with state.engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            async for chunk in _export_chunks(conn, head):
                yield chunk


async def _export_chunks(conn, head: dict[str, Any]) -> AsyncIterator[bytes]:
    person, ids = await store.person_ids(conn, head["distinct_id"])
    person_row, merged = await store.person_rows(conn, person)
    head = {**head, "person_distinct_id": person, "distinct_ids": ids, "person": person_row, "merged_ids": merged}
    yield _dumps(head)[:-1]  # the object stays open: the lists follow
    yield b',"sessions":['
    first = True
    async for rows in store.session_pages(conn, ids):
        for row in rows:
            yield (b"" if first else b",") + _dumps(row)
            first = False
    yield b'],"events":['
    first = True
    async for rows in store.event_pages(conn, ids):
        yield (b"" if first else b",") + b",".join(_dumps(r) for r in rows)
        first = False
    yield b'],"rejected_events":['
    first = True
    async for row, payload in store.dead_letters_of(conn, ids):
        yield (b"" if first else b",") + _dumps({**row, **_payload_fields(payload)})
        first = False
    yield b"]}"


def _payload_fields(payload: bytes) -> dict[str, str]:
    """A payload as text when it is UTF-8, else as base64."""
    try:
        return {"payload_text": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"payload_base64": base64.b64encode(payload).decode("ascii")}


@admin_only
async def list_audit_log(request: Request) -> Response:
    check_unknown_params(request, {"action", "distinct_id", "start", "end", "limit", "cursor"})
    where, params = [], {}
    action = request.query_params.get("action")
    if action:
        if action not in ACTIONS:
            raise ApiError.of(
                "invalid_parameter",
                "action must be one of " + ", ".join(ACTIONS) + ".",
                {"action": "unknown action"},
            )
        where.append("action = :action")
        params["action"] = action
    distinct_id = text_param(request, "distinct_id")
    if distinct_id:
        where.append("subject_sha256 = :subject")
        params["subject"] = store.subject_hash(distinct_id)
    return await newest_first_response(
        request,
        newest_first_rows,
        select="SELECT id, at, admin_key_id, admin_key_name, action, subject_sha256, details FROM audit_log",
        where=where,
        params=params,
        time_column="at",
        id_column="id",
    )


class AnyTextConvertor(Convertor[str]):
    """Like Starlette's `path`, but its `.*` also spans line breaks: without it a distinct_id that holds one
    (which capture accepts) could be neither erased nor exported, and its requests got an undocumented 404."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("any_text", AnyTextConvertor())


def privacy_routes() -> list[Route]:
    # A distinct_id may hold a slash (sent as %2F) or a line break.
    return [
        *method_routes(f"{PERSONS}/{{distinct_id:any_text}}/export/", {"GET": export_person}),
        *method_routes(f"{PERSONS}/{{distinct_id:any_text}}/", {"DELETE": erase_person}),
        *method_routes(f"{AUDIT_LOG}/", {"GET": list_audit_log}),
    ]
