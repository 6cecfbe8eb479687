"""The dashboard reads and writes through the admin API's own handlers, called in-process.

So the pages run exactly the queries, validation and storage path of the JSON
API (a flag saved here bumps the config version and refreshes the cache the
same way). The handlers' admin-key check is skipped (`__wrapped__`): the
dashboard has already checked its session cookie.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
from starlette.requests import Request


async def call_admin(
    handler,
    request: Request,
    *,
    params: Mapping[str, Any] | None = None,
    path_params: Mapping[str, Any] | None = None,
    body: Any = None,
) -> Any:
    """The handler's JSON answer as Python values; its ApiError (4xx) propagates to the caller."""
    query = {k: str(v) for k, v in (params or {}).items() if v not in (None, "")}
    raw = orjson.dumps(body) if body is not None else b""
    scope = {
        **request.scope,
        "query_string": urlencode(query).encode(),
        "path_params": {k: str(v) for k, v in (path_params or {}).items()},
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    response = await handler.__wrapped__(Request(scope, receive))
    return orjson.loads(response.body) if response.body else None


def cursor_of(link: str | None) -> str | None:
    """The cursor token of a page link of the admin API (the dashboard builds its own links)."""
    if not link:
        return None
    values = parse_qs(urlsplit(link).query).get("cursor")
    return values[0] if values else None
