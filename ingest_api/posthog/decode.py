"""PostHog request bodies → JSON bytes: gzip, base64 and the legacy form body (`decode_body` is pure;
`decode_request_body` reads its inputs from the request).

SDKs compress in several ways; all are recognised here:
- `Content-Encoding: gzip`, or the `compression` query parameter (`gzip`, `gzip-js`);
- a body starting with gzip's magic bytes (1f 8b), whatever the headers say;
- `compression=base64`: the body is base64 of the JSON;
- the legacy form body `data=<base64 JSON>` (application/x-www-form-urlencoded),
  possibly gzip inside, with `compression` in the form or the query string.

Size limits are the native ones (`decode.gunzip_limited`); errors are native
`ApiError`s, so refusals read the same on every endpoint.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs

from starlette.requests import Request

from eventtrack.errors import ApiError
from ingest_api.decode import check_content_type, content_encoding, gunzip_limited

GZIP_MAGIC = b"\x1f\x8b"
_FORM = "application/x-www-form-urlencoded"
_COMPRESSIONS = {"", "none", "gzip", "gzip-js", "base64"}


def decode_body(
    raw: bytes, *, content_type: str | None, encoding_header: str | None, compression: str | None, limit: int
) -> bytes:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    compression = (compression or "").strip().lower()
    if media == _FORM or (media in ("", "text/plain") and raw[:5] == b"data="):
        raw, compression = _form_data(raw, compression)
    else:
        check_content_type(content_type)
    if compression not in _COMPRESSIONS:
        raise ApiError.of(
            "unsupported_encoding",
            f"compression {compression!r} is not supported; use gzip, gzip-js, base64 or none.",
            {"compression": "gzip, gzip-js, base64 or none"},
        )
    if compression == "base64":
        raw = _b64(raw, "body")
    if content_encoding(encoding_header) == "gzip" or compression in ("gzip", "gzip-js") or raw[:2] == GZIP_MAGIC:
        return gunzip_limited(raw, limit)
    return raw


def decode_request_body(raw: bytes, request: Request, limit: int) -> bytes:
    """`decode_body` of a request's raw body, as its headers and `compression` query parameter describe it."""
    return decode_body(
        raw,
        content_type=request.headers.get("content-type"),
        encoding_header=request.headers.get("content-encoding"),
        compression=request.query_params.get("compression"),
        limit=limit,
    )


def _form_data(raw: bytes, compression: str) -> tuple[bytes, str]:
    try:
        form = parse_qs(raw.decode("ascii"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ApiError.of("invalid_form", "The form body is not URL-encoded ASCII.", {"data": "invalid form"}) from None
    if "data" not in form:
        raise ApiError.of("invalid_form", "The form body carries no `data` field.", {"data": "is required"})
    compression = (form.get("compression") or [compression])[0].strip().lower() or compression
    data = form["data"][0].encode("utf-8")
    if data[:1] in (b"{", b"["):  # plain JSON in the form field
        return data, "" if compression == "base64" else compression
    decoded = _b64(data.replace(b" ", b"+"), "data")  # a '+' sent unescaped reads as a space
    return decoded, "" if compression == "base64" else compression


def _b64(data: bytes, field: str) -> bytes:
    data = data.strip()
    try:
        return base64.b64decode(
            data + b"=" * (-len(data) % 4), altchars=b"-_" if b"-" in data or b"_" in data else None, validate=True
        )
    except (binascii.Error, ValueError):
        raise ApiError.of("invalid_base64", fields={field: "invalid base64"}) from None
