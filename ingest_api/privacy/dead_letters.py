"""Does a dead letter belong to a person? (pure)

A dead letter's payload is the refused body or event as raw bytes: often JSON,
but possibly gzip, base64, a PostHog form body, cut off at
DEAD_LETTER_PAYLOAD_BYTES, or not JSON at all. It is decoded as far as it
goes; a payload that parses as JSON belongs to the person when an id field
(`distinct_id`, `$distinct_id`, `$anon_distinct_id`, `alias`) anywhere in it
holds one of their ids; one that does not parse (cut off, broken) when it
contains one of their ids as a JSON string literal (`"the-id"`, or a bare
number for numeric ids after an id key). Limits in docs/privacy.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

import orjson

ID_KEYS = frozenset({"distinct_id", "$distinct_id", "$anon_distinct_id", "alias"})
_MAX_INFLATED = 4 * 1024 * 1024  # a stored payload is small; never inflate more than this
_MAX_DEPTH = 64


def payload_mentions(payload: bytes, ids: Iterable[str]) -> bool:
    """True when the dead letter's payload carries one of `ids` as an id."""
    wanted = frozenset(ids)
    if not wanted:
        return False
    return any(_layer_mentions(layer, wanted) for layer in _layers(payload))


def sql_needles(ids: Iterable[str]) -> list[bytes]:
    """Byte strings one of which every matching payload contains unless it is encoded (gzip, base64, form):
    a cheap SQL prefilter (`position(needle in payload) > 0`) before payload_mentions."""
    needles: set[bytes] = set()
    for value in ids:
        needles.add(value.encode("utf-8", "surrogatepass"))
        needles.add(json.dumps(value)[1:-1].encode("ascii"))  # \\u-escaped, as some clients send it
    return sorted(n for n in needles if n)


def _layers(payload: bytes) -> list[bytes]:
    """The payload and what it decodes to (gzip, base64, form body), outermost first."""
    layers = [payload]
    current = payload
    for _ in range(3):  # form → base64 → gzip at most
        decoded = _decode_once(current)
        if decoded is None or decoded == current:
            break
        layers.append(decoded)
        current = decoded
    return layers


def _decode_once(data: bytes) -> bytes | None:
    if data[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            return inflater.decompress(data, _MAX_INFLATED)  # a cut-off stream still yields its start
        except zlib.error:
            return None
    stripped = data.strip()
    if stripped[:5] == b"data=":
        try:
            form = parse_qs(stripped.decode("ascii"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
        value = (form.get("data") or [""])[0].encode("utf-8")
        if value[:1] in (b"{", b"["):
            return value
        return _b64(value.replace(b" ", b"+"))
    if stripped[:1] not in (b"{", b"[", b'"') and stripped:
        return _b64(stripped)
    return None


def _b64(data: bytes) -> bytes | None:
    try:
        altchars = b"-_" if b"-" in data or b"_" in data else None
        return base64.b64decode(data + b"=" * (-len(data) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None


def _layer_mentions(data: bytes, wanted: frozenset[str]) -> bool:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(data)  # orjson refuses lone surrogates and NaN, which the ingest tolerates
        except (ValueError, RecursionError):
            return _bytes_mention(data, wanted)
    return _tree_mentions(value, wanted, 0)


def _tree_mentions(value: Any, wanted: frozenset[str], depth: int) -> bool:
    if depth > _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ID_KEYS and _as_id(item) in wanted:
                return True
            if isinstance(item, (dict, list)) and _tree_mentions(item, wanted, depth + 1):
                return True
    elif isinstance(value, list):
        return any(_tree_mentions(item, wanted, depth + 1) for item in value)
    return False


def _as_id(value: Any) -> str | None:
    """The distinct_id the ingest would have made of `value` (a number becomes its string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _bytes_mention(data: bytes, wanted: frozenset[str]) -> bool:
    for value in wanted:
        for literal in (orjson.dumps(value), json.dumps(value).encode("ascii")):
            if literal in data:
                return True
        if value.isascii() and value.isdigit():  # a numeric id sent as a number: `"distinct_id": 42`
            if re.search(
                rb'"(?:\$?distinct_id|\$anon_distinct_id|alias)"\s*:\s*' + value.encode() + rb"(?![0-9.eE])", data
            ):
                return True
    return False
