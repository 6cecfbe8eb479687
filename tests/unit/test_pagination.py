"""Cursors: what a page link carries comes back as the listing's typed sort key, and nothing else gets in."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from eventtrack.errors import ApiError
from ingest_api.admin.pagination import (
    ID,
    TEXT,
    TIMESTAMP,
    UUID,
    Cursor,
    decode_cursor,
    encode_cursor,
)

EVENT_ID = "0193a6a4-1111-7000-8000-000000000001"


def token(value) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def test_a_cursor_of_a_page_link_comes_back_as_typed_values():
    edge = Cursor(("2026-11-25T10:30:00+00:00", EVENT_ID), False)
    decoded = decode_cursor(encode_cursor(edge), (TIMESTAMP, UUID))
    assert decoded == Cursor((datetime(2026, 11, 25, 10, 30, tzinfo=UTC), uuid.UUID(EVENT_ID)), False)
    assert decode_cursor(encode_cursor(Cursor((42,), True)), (ID,)) == Cursor((42,), True)
    assert decode_cursor(
        token({"k": ["2026-11-25T00:00:00", "e", "", "ios"], "f": True}), (TIMESTAMP, TEXT, TEXT, TEXT)
    ).key[1:] == ("e", "", "ios")
    assert decode_cursor(None, (ID,)) is None and decode_cursor("", (ID,)) is None


@pytest.mark.parametrize(
    "raw, kinds",
    [
        ("eyJrIjpbdHJ1ZV0sImYiOnRydWV9", (ID,)),  # {"k":[true],"f":true}: once `bigint > boolean`, a 500
        (token({"k": [1.5], "f": True}), (ID,)),
        (token({"k": ["7"], "f": True}), (ID,)),
        (token({"k": [-1], "f": True}), (ID,)),
        (token({"k": [2**63], "f": True}), (ID,)),
        (token({"k": [None], "f": True}), (ID,)),
        (token({"k": [1], "f": "yes"}), (ID,)),
        (token({"k": [1, 2], "f": True}), (ID,)),
        (token({"k": [True, EVENT_ID], "f": True}), (TIMESTAMP, UUID)),
        (token({"k": ["yesterday", EVENT_ID], "f": True}), (TIMESTAMP, UUID)),
        (token({"k": ["0001-01-01T00:00:00+01:00", EVENT_ID], "f": True}), (TIMESTAMP, UUID)),
        (token({"k": ["2026-11-25T10:30:00Z", 5], "f": True}), (TIMESTAMP, UUID)),
        (token({"k": ["2026-11-25T10:30:00Z", "not-a-uuid"], "f": True}), (TIMESTAMP, UUID)),
        (token({"k": ["2026-11-25T10:30:00Z", "e\u0000", "", ""], "f": True}), (TIMESTAMP, TEXT, TEXT, TEXT)),
        (token({"k": ["2026-11-25T10:30:00Z", 1, "", ""], "f": True}), (TIMESTAMP, TEXT, TEXT, TEXT)),
        (token([1]), (ID,)),
        (token(1), (ID,)),
        ("zzz", (ID,)),
        ("ëëë", (ID,)),
        (base64.urlsafe_b64encode(b'{"k": ["\\ud800"], "f": true}').decode(), (TEXT,)),
    ],
)
def test_a_cursor_that_is_not_of_the_listing_kinds_is_400_invalid_cursor(raw, kinds):
    with pytest.raises(ApiError) as refused:
        decode_cursor(raw, kinds)
    assert (refused.value.status, refused.value.code, list(refused.value.fields)) == (400, "invalid_cursor", ["cursor"])
