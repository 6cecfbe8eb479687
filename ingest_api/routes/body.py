"""Reading a request body for a route: decode it or dead-letter it."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request

from ingest_api.capture_pipeline import remote_addr, write_rows
from ingest_api.dead_letter import reject_body
from ingest_api.decode import (
    BodyRefused,
    DecodedBody,
    check_content_type,
    content_encoding,
    gunzip_limited,
    parse_json,
    read_limited,
)
from ingest_api.errors import ApiError
from ingest_api.state import AppState


async def read_json_body(
    request: Request, state: AppState, endpoint: str, limit: int, received_at: datetime, *, allow_empty: bool = False
) -> DecodedBody | None:
    """Returns the decoded body (None for an allowed empty body), or raises ApiError after keeping the refused body."""
    keep = state.settings.dead_letter_payload_bytes
    raw = b""
    raw_size = 0
    try:
        check_content_type(request.headers.get("content-type"))
        encoding = content_encoding(request.headers.get("content-encoding"))
        raw = await read_limited(request.stream(), request.headers.get("content-length"), limit, keep)
        raw_size = len(raw)
        if not raw.strip() and allow_empty:
            return None
        body = gunzip_limited(raw, limit) if encoding == "gzip" else raw
        value, needs_sanitizing = parse_json(body)
        return DecodedBody(value, raw, len(body), needs_sanitizing)
    except BodyRefused as refused:
        await dead_letter_body(request, state, endpoint, refused.error, refused.raw, refused.raw_size, received_at)
        raise refused.error
    except ApiError as err:
        if not raw and err.code in ("unsupported_media_type", "unsupported_encoding"):
            raw = await read_limited_quietly(request, keep)
            raw_size = len(raw)
        await dead_letter_body(request, state, endpoint, err, raw, raw_size, received_at)
        raise


async def read_limited_quietly(request: Request, keep: int) -> bytes:
    try:
        return await read_limited(request.stream(), None, keep, keep)
    except BodyRefused as refused:
        return refused.raw


async def dead_letter_body(
    request: Request, state: AppState, endpoint: str, err: ApiError, raw: bytes, raw_size: int, received_at: datetime
) -> None:
    row = reject_body(
        received_at=received_at,
        endpoint=endpoint,
        code=err.code,
        detail=err.detail,
        fields=err.fields,
        raw=raw,
        raw_size=raw_size,
        keep=state.settings.dead_letter_payload_bytes,
        remote_addr=remote_addr(request),
    )
    # Not kept (the sink cannot commit): a 503, so the client retries rather than believe it was recorded.
    await write_rows(state, (), (row,))
