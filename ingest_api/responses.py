"""JSON answers: an `ApiError`'s `{"error", "detail", "fields"}` with the catalogue's status, and a cacheable
body with its ETag."""

from __future__ import annotations

import hashlib

import orjson
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.errors import ApiError


def error_response(err: ApiError) -> Response:
    return Response(
        orjson.dumps(err.body()),
        status_code=err.status,
        media_type="application/json",
        headers=err.headers or None,
    )


def _if_none_match(raw_headers: list[tuple[bytes, bytes]]) -> str | None:
    # The first If-None-Match, as request.headers.get() gives it, without building the headers and raising
    # (and catching) a KeyError when there is none, which is most of the time.
    for name, value in raw_headers:
        if name == b"if-none-match":
            return value.decode("latin-1")
    return None


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest() + '"'


def etag_json(request: Request, body: bytes, etag: str | None = None) -> Response:
    """`body` (JSON) with an ETag of its content (`etag`, when the caller has it already); a 304 without the body
    when the client already holds that ETag."""
    etag = etag or etag_of(body)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    held = _if_none_match(request.scope["headers"])
    if held is not None and etag in [t.strip() for t in held.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
