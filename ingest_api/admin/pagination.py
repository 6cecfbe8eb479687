"""Keyset (cursor) pagination in the Django REST framework style (pure).

A page answers `{"next": url|null, "previous": url|null, "results": [...]}`.
The cursor is an opaque token holding the sort key of a page edge and the
direction, so pages stay stable while new rows arrive and cost the same deep
into a large table.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlencode

import orjson

from ingest_api.errors import ApiError

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Cursor:
    key: tuple  # the sort key of the edge row (JSON-able values)
    forward: bool  # True: rows after `key` in the listing order; False: rows before it


def encode_cursor(cursor: Cursor) -> str:
    raw = orjson.dumps({"k": list(cursor.key), "f": cursor.forward})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None, key_length: int) -> Cursor | None:
    if not token:
        return None
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        key, forward = data["k"], data["f"]
        if not isinstance(key, list) or len(key) != key_length or not isinstance(forward, bool):
            raise ValueError
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise ApiError(400, "invalid_parameter", "The cursor is not valid.", {"cursor": "invalid cursor"}) from None
    return Cursor(tuple(key), forward)


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "invalid_parameter", f"limit must be an integer from 1 to {MAX_LIMIT}.", {"limit": f"1..{MAX_LIMIT}"})
    return limit


def page(
    rows: Sequence[Any], *, limit: int, cursor: Cursor | None, key_of, base_url: str, params: dict[str, str]
) -> dict[str, Any]:
    """`rows` were fetched with limit + 1 in the direction of `cursor`; builds the page and its links."""
    forward = cursor is None or cursor.forward
    has_more = len(rows) > limit
    rows = list(rows[:limit])
    if not forward:
        rows.reverse()
    # Going forward there is a previous page iff we came by a cursor; backward, iff there were more rows.
    has_next = has_more if forward else cursor is not None
    has_previous = (cursor is not None) if forward else has_more

    def link(edge: Any, to_forward: bool) -> str:
        query = {k: v for k, v in params.items() if k != "cursor" and v is not None}
        query["cursor"] = encode_cursor(Cursor(key_of(edge), to_forward))
        return f"{base_url}?{urlencode(query, doseq=True)}"  # doseq: repeated filters stay repeated

    return {
        "next": link(rows[-1], True) if has_next and rows else None,
        "previous": link(rows[0], False) if has_previous and rows else None,
        "results": rows,
    }
