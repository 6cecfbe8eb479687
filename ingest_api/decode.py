"""Request body → JSON value: content type, size limits (while reading), gzip, JSON.

Failures raise `BodyRefused`, which carries the `ApiError` for the client and
the raw bytes read so far, so the caller can keep them in the dead-letter table.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from eventtrack.errors import ApiError, client_disconnected

# Content types whose body we read as JSON. text/plain is what browser and
# some mobile SDKs send to avoid CORS preflights; a missing type is accepted too.
_JSON_TYPES = {"", "application/json", "text/plain", "application/octet-stream"}
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


@dataclass
class BodyRefused(Exception):
    error: ApiError
    raw: bytes
    raw_size: int


@dataclass
class DecodedBody:
    value: Any
    raw: bytes  # as received (maybe gzip), for the dead-letter table
    size: int  # decompressed size
    # True when the body needed the tolerant parser (lone surrogates, NaN...):
    # strings must then be sanitized before they reach Postgres.
    needs_sanitizing: bool


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or media.endswith("+json"):
        return
    raise ApiError.of(
        "unsupported_media_type",
        f"Content-Type {media!r} cannot be read; send application/json.",
        {"content-type": "must be application/json"},
    )


def _too_large(limit: int) -> ApiError:
    # The rest of the body is left to uvicorn, which discards it after the answer (the
    # client, still sending, then reads the 413 instead of a reset connection).
    return ApiError.of(
        "payload_too_large",
        f"The request body is larger than the limit of {limit} bytes.",
        {"body": f"max {limit} bytes"},
    )


async def read_limited(stream: AsyncIterator[bytes], content_length: str | None, limit: int, keep: int) -> bytes:
    """Reads at most `limit` bytes; a longer body is refused before it is all in memory.

    A `Content-Length` over the limit is refused from the header alone, before any of
    the body is read (nothing is waited for). A client gone mid-body is refused with
    `client_disconnected` (nobody reads that answer; it is counted, not logged).
    """
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            declared = None
        if declared is not None and declared > limit:
            raise BodyRefused(_too_large(limit), b"", declared)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise BodyRefused(_too_large(limit), b"".join(chunks)[:keep], size)
            chunks.append(chunk)
    except ClientDisconnect:
        # What arrived is kept like any refusal.
        raise BodyRefused(client_disconnected(), b"".join(chunks)[:keep], size) from None
    return b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """The body of a request whose refusals are not dead-lettered (flags, admin, dashboard forms), at most `limit` bytes."""
    try:
        return await read_limited(request.stream(), request.headers.get("content-length"), limit, 0)
    except BodyRefused as refused:
        raise refused.error from None


def gunzip_limited(raw: bytes, limit: int) -> bytes:
    """Decompresses gzip, stopping as soon as the output passes `limit` (a zip bomb costs ~limit bytes)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise ApiError.of(
            "invalid_gzip", f"The gzip body could not be decompressed: {exc}.", {"body": "invalid gzip"}
        ) from None
    if len(out) > limit:
        raise ApiError.of(
            "payload_too_large",
            f"The decompressed body is larger than the limit of {limit} bytes.",
            {"body": f"max {limit} bytes decompressed"},
        )
    if not inflater.eof:
        raise ApiError.of("invalid_gzip", "The gzip stream is truncated.", {"body": "truncated gzip"})
    return out


def content_encoding(headers_value: str | None) -> str:
    value = (headers_value or "identity").strip().lower()
    if value in ("identity", ""):
        return "identity"
    if value in ("gzip", "x-gzip"):
        return "gzip"
    raise ApiError.of(
        "unsupported_encoding",
        f"Content-Encoding {value!r} is not supported; use gzip or none.",
        {"content-encoding": "gzip or identity"},
    )


def parse_json(body: bytes) -> tuple[Any, bool]:
    """Returns (value, needs_sanitizing).

    orjson is the fast path. It refuses lone surrogates and NaN/Infinity that
    some clients emit; the stdlib parser then takes the body so those become
    per-event errors (or replacement characters) instead of failing a batch.
    """
    try:
        return orjson.loads(body), b"\\u0000" in body
    except orjson.JSONDecodeError:
        pass
    try:
        value = json.loads(body, parse_int=_parse_int, parse_constant=_parse_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError.of(
            "invalid_json", f"The body is not valid JSON: {_short(exc)}.", {"body": "invalid JSON"}
        ) from None
    return value, True


def parse_json_object(body: bytes) -> dict[str, Any]:
    """An optional JSON object body (flag requests): empty means `{}`; anything but an object is refused."""
    data, _ = parse_json(body) if body.strip() else ({}, False)
    if not isinstance(data, dict):
        raise ApiError.of("not_an_object", fields={"body": "must be an object"})
    return data


def _parse_int(text: str) -> int | float:
    # Same outcome as orjson: integers beyond 64 bits become the nearest double.
    try:
        value = int(text)
        return value if _INT64_MIN <= value <= _UINT64_MAX else float(value)
    except (ValueError, OverflowError):  # beyond a double (or thousands of digits): out of range
        return math.inf


def _parse_constant(name: str) -> float:
    # NaN / Infinity are not JSON; kept as float markers that validation refuses per event.
    return math.nan if name == "NaN" else (math.inf if name == "Infinity" else -math.inf)


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split("\n", 1)[0][:200]
