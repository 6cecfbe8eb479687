"""Reading a native request body for a route: decode it or dead-letter it."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request

from eventtrack.errors import ApiError
from ingest_api.capture_pipeline import refuse_body
from ingest_api.decode import (
    BodyRefused,
    DecodedBody,
    check_content_type,
    content_encoding,
    gunzip_limited,
    parse_json,
    read_limited,
)
from ingest_api.state import AppState
from ingest_api.write_keys import require_write_key


async def read_json_object(
    request: Request,
    state: AppState,
    endpoint: str,
    limit: int,
    received_at: datetime,
    *,
    not_an_object: str | None = None,
    allow_empty: bool = False,
) -> DecodedBody | None:
    """A native body that must be a JSON object, from a client with a write key.

    Returns the decoded body (None for an allowed empty body), or raises the ApiError: an unreadable body or
    one that is not an object (`not_an_object`: what the refusal's detail says instead of the catalogue's) is
    kept in the dead letters first; a missing write key is not (the body is not looked at without one).
    """
    keep = state.settings.dead_letter_payload_bytes
    raw = b""
    raw_size = 0
    content_type = encoding_header = length = None
    # One pass (Starlette's Headers scans the list per lookup); the first of a repeated header counts, as there.
    for name, value in reversed(request.scope["headers"]):
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-encoding":
            encoding_header = value.decode("latin-1")
        elif name == b"content-length":
            length = value.decode("latin-1")
    try:
        check_content_type(content_type)
        encoding = content_encoding(encoding_header)
        raw = await read_limited(request.stream(), length, limit, keep)
        raw_size = len(raw)
        if not raw.strip() and allow_empty:
            decoded = None
        else:
            body = gunzip_limited(raw, limit) if encoding == "gzip" else raw
            value, needs_sanitizing = parse_json(body)
            decoded = DecodedBody(value, raw, len(body), needs_sanitizing)
    except BodyRefused as refused:
        await refuse_body(request, state, endpoint, received_at, refused.error, refused.raw, refused.raw_size)
    except ApiError as err:
        if not raw and err.code in ("unsupported_media_type", "unsupported_encoding"):
            raw = await read_limited_quietly(request, keep)
            raw_size = len(raw)
        await refuse_body(request, state, endpoint, received_at, err, raw, raw_size)
    require_write_key(request, None if decoded is None else decoded.value)
    if decoded is not None and not isinstance(decoded.value, dict):
        err = ApiError.of("not_an_object", not_an_object, {"body": "must be an object"})
        await refuse_body(request, state, endpoint, received_at, err, raw)
    return decoded


async def read_limited_quietly(request: Request, keep: int) -> bytes:
    try:
        return await read_limited(request.stream(), None, keep, keep)
    except BodyRefused as refused:
        return refused.raw
