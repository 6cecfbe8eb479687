"""What every admin JSON handler shares: the admin-key check, JSON answers, query parameters and the JSON body.

The admin route modules (and the privacy routes under the same prefix) build on this module; it imports none of them.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.clock import InvalidTimestamp, parse_timestamp
from eventtrack.database import DATABASE_DOWN
from eventtrack.errors import ApiError, unavailable
from ingest_api.admin.keys import bearer_token, find_key
from ingest_api.decode import parse_json, read_body
from ingest_api.routing import API, Handler
from ingest_api.state import loaded_snapshot

ADMIN = f"{API}/admin"
JSON_BODY_LIMIT = 256 * 1024


def json_bytes(body: Any) -> bytes:
    """JSON of what the admin API answers or writes to jsonb: orjson, or the stdlib for what orjson refuses
    (jsonb can hold integers beyond 64 bits, read back from a stored row)."""
    try:
        return orjson.dumps(body, default=_default)
    except TypeError:
        return json.dumps(body, default=_default, ensure_ascii=False).encode()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_bytes(body), status_code=status, media_type="application/json", headers=headers)


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
        snapshot = loaded_snapshot(request)
        token = bearer_token(request.headers.get("authorization"))
        if token is None or find_key(token, snapshot.admin_keys) is None:
            raise ApiError.of(
                "unauthorized",
                fields={"authorization": "missing, malformed, unknown or revoked key"},
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return await handler(request)
        except DATABASE_DOWN:
            raise unavailable(request.app.state.eventtrack.settings.retry_after_seconds) from None

    return wrapped


# --- query parameters --------------------------------------------------------


def time_param(request: Request, name: str) -> datetime | None:
    return time_value(name, request.query_params.get(name))


def time_value(name: str, value: str | None) -> datetime | None:
    """The time parameter `name` (None when absent or empty); 400 when it is not an ISO 8601 time."""
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except InvalidTimestamp as exc:
        raise ApiError.of("invalid_parameter", f"{name} {exc}.", {name: str(exc)}) from None


def text_param(request: Request, name: str) -> str | None:
    return text_value(name, request.query_params.get(name))


def text_value(name: str, value: str | None) -> str | None:
    """The text parameter `name` (None when absent or empty); 400 when too long or holding NUL."""
    if value is not None and (len(value) > 200 or "\x00" in value):
        raise ApiError.of("invalid_parameter", f"{name} is too long or holds NUL characters.", {name: "invalid"})
    return value or None


def check_unknown_params(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ApiError.of(
            "invalid_parameter",
            "Unknown query parameters: " + ", ".join(unknown) + ".",
            {k: "unknown parameter" for k in unknown},
        )


def text_filters(request: Request, names: tuple[str, ...]) -> tuple[list[str], dict[str, Any]]:
    """`name = :name` conditions and their values, one for each of the text parameters `names` the request sets."""
    where, params = [], {}
    for name in names:
        value = text_param(request, name)
        if value is not None:
            where.append(f"{name} = :{name}")
            params[name] = value
    return where, params


def path_id(request: Request, name: str, not_found: ApiError) -> int:
    """The row id in the path parameter `name`; `not_found` raised unless it is a positive bigint."""
    try:
        value = int(request.path_params[name])
    except ValueError:
        value = -1
    if not 0 < value < 2**63:
        raise not_found
    return value


def base_url(request: Request) -> str:
    """The request's URL without its query: what page links are built on."""
    return str(request.url.replace(query=""))


# --- body ----------------------------------------------------------------------


async def json_object(request: Request) -> dict[str, Any]:
    value, _ = parse_json(await read_body(request, JSON_BODY_LIMIT))
    if not isinstance(value, dict):
        raise ApiError.of("not_an_object", fields={"body": "must be an object"})
    return value
