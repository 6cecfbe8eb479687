"""POST /ofrep/v1/evaluate/flags/{key} and /ofrep/v1/evaluate/flags (bulk, with ETag)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest_api.decode import read_body
from ingest_api.ofrep.evaluate import OfrepError, evaluate_flag, read_context
from ingest_api.responses import etag_json
from ingest_api.routing import method_routes
from ingest_api.state import FLAGS_NOT_LOADED, loaded_snapshot
from ingest_api.write_keys import require_write_key

BODY_LIMIT = 64 * 1024


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _key_from_authorization(request: Request) -> dict[str, str] | None:
    """OFREP clients usually send `Authorization: Bearer <key>`: accepted as the write key too."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return {"api_key": token.strip()} if scheme.lower() == "bearer" and token.strip() else None


async def _context(request: Request) -> tuple[str | None, dict[str, Any]]:
    raw = await read_body(request, BODY_LIMIT)
    if not raw.strip():
        return read_context(None)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise OfrepError("PARSE_ERROR") from None
    return read_context(body)


async def evaluate_one(request: Request) -> Response:
    snapshot = loaded_snapshot(request, FLAGS_NOT_LOADED)
    require_write_key(request, _key_from_authorization(request))
    key = request.path_params["key"]
    try:
        targeting_key, attributes = await _context(request)
        flag = next((f for f in snapshot.flags if f.data["key"] == key), None)
        if flag is None:
            raise OfrepError("FLAG_NOT_FOUND", f"No flag has the key {key!r}.")
        return _json(evaluate_flag(flag, targeting_key, attributes))
    except OfrepError as err:
        return _json({"key": key, "errorCode": err.code, "errorDetails": err.details}, err.status)


async def evaluate_all(request: Request) -> Response:
    snapshot = loaded_snapshot(request, FLAGS_NOT_LOADED)
    require_write_key(request, _key_from_authorization(request))
    try:
        targeting_key, attributes = await _context(request)
        flags = [evaluate_flag(flag, targeting_key, attributes) for flag in snapshot.flags]
    except OfrepError as err:
        return _json({"errorCode": err.code, "errorDetails": err.details}, err.status)
    return etag_json(request, orjson.dumps({"flags": flags}))


def routes() -> list[Route]:
    return [
        *method_routes("/ofrep/v1/evaluate/flags/{key}", {"POST": evaluate_one}),
        *method_routes("/ofrep/v1/evaluate/flags", {"POST": evaluate_all}),
    ]
