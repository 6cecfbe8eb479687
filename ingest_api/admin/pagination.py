"""Keyset (cursor) pagination in the Django REST framework style (pure).

A page answers `{"next": url|null, "previous": url|null, "results": [...]}`.
The cursor is an opaque token holding the sort key of a page edge and the
direction, so pages stay stable while new rows arrive and cost the same deep
into a large table.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from eventtrack.clock import InvalidTimestamp, parse_timestamp
from eventtrack.errors import ApiError

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Cursor:
    key: tuple  # the sort key of the edge row, as the listing's query takes it
    forward: bool  # True: rows after `key` in the listing order; False: rows before it


# What each value of a listing's sort key is. A cursor comes from the client, so
# every value is checked against its listing's kinds before it reaches a query
# (`[true]` for an id once reached Postgres as `bigint > boolean`: a 500).
ID = "id"  # a bigint row id
TIMESTAMP = "timestamp"  # ISO 8601, read as UTC when it has no zone
UUID = "uuid"
TEXT = "text"  # a sort column's text
SCORE = "score"  # a finite number (a churn score)


def _key_value(kind: str, value: Any) -> Any:
    """The value as the query takes it; ValueError when it is not of its kind."""
    if kind == ID and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    if kind == TIMESTAMP:
        try:
            return parse_timestamp(value)
        except InvalidTimestamp:
            pass
    if kind == UUID and isinstance(value, str) and len(value) <= 64:
        return uuid.UUID(value)  # ValueError when malformed
    if kind == TEXT and isinstance(value, str) and "\x00" not in value:
        return value
    if kind == SCORE and isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValueError(f"not a {kind}")


def encode_cursor(cursor: Cursor) -> str:
    raw = orjson.dumps({"k": list(cursor.key), "f": cursor.forward})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None, kinds: tuple[str, ...]) -> Cursor | None:
    """The cursor of a page link, its key checked against `kinds` (one per sort column); 400 `invalid_cursor` otherwise."""
    if not token:
        return None
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        key, forward = data["k"], data["f"]
        if not isinstance(key, list) or len(key) != len(kinds) or not isinstance(forward, bool):
            raise ValueError
        values = tuple(_key_value(kind, value) for kind, value in zip(kinds, key))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise ApiError.of("invalid_cursor", fields={"cursor": "invalid cursor"}) from None
    return Cursor(values, forward)


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError.of(
            "invalid_parameter", f"limit must be an integer from 1 to {MAX_LIMIT}.", {"limit": f"1..{MAX_LIMIT}"}
        )
    return limit


@dataclass(frozen=True)
class Slice:
    """One page of a listing: its rows and the cursor tokens of the pages beside it (None at an end)."""

    results: list[Any]
    next: str | None
    previous: str | None


def page_slice(rows: Sequence[Any], *, limit: int, cursor: Cursor | None, key_of) -> Slice:
    """`rows` were fetched with limit + 1 in the direction of `cursor`; `key_of` gives a row's sort key."""
    forward = cursor is None or cursor.forward
    has_more = len(rows) > limit
    rows = list(rows[:limit])
    if not forward:
        rows.reverse()
    # Going forward there is a previous page iff we came by a cursor; backward, iff there were more rows.
    has_next = has_more if forward else cursor is not None
    has_previous = (cursor is not None) if forward else has_more
    return Slice(
        rows,
        encode_cursor(Cursor(key_of(rows[-1]), True)) if has_next and rows else None,
        encode_cursor(Cursor(key_of(rows[0]), False)) if has_previous and rows else None,
    )


def page_body(part: Slice, *, base_url: str, params: dict[str, Any]) -> dict[str, Any]:
    """The API's answer for a page: `next` and `previous` as links to `base_url` with the request's other parameters."""

    def link(token: str | None) -> str | None:
        if token is None:
            return None
        query = {k: v for k, v in params.items() if k != "cursor" and v is not None}
        query["cursor"] = token
        return f"{base_url}?{urlencode(query, doseq=True)}"  # doseq: repeated filters stay repeated

    return {"next": link(part.next), "previous": link(part.previous), "results": part.results}


def page(
    rows: Sequence[Any], *, limit: int, cursor: Cursor | None, key_of, base_url: str, params: dict[str, str]
) -> dict[str, Any]:
    """`rows` were fetched with limit + 1 in the direction of `cursor`; builds the page and its links."""
    return page_body(page_slice(rows, limit=limit, cursor=cursor, key_of=key_of), base_url=base_url, params=params)
