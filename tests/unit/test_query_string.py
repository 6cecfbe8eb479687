"""query_fields reads a query string as Starlette's QueryParams does (the flag endpoints' fast path)."""

from __future__ import annotations

import itertools
import random

import pytest
from starlette.datastructures import QueryParams

from ingest_api.query_string import query_fields

PIECES = ["distinct_id=u1", "a=", "a", "=x", "a=b=c", "a=1", "a=2", "", "%20=%41", "p=%7B%22k%22%3A1%7D",
          "x=a+b", "y=%2B", "é=ü", "k=%ZZ", "k=%e9", "z=%C3%A9", ";", "s=a;b", "&"]  # fmt: skip


@pytest.mark.parametrize("query", ["", "&", "&&a=1&&", "distinct_id=u&os_name=iOS&app_version=3.1.2"])
def test_examples(query):
    assert query_fields(query.encode()) == dict(QueryParams(query.encode()).items())


def test_every_pair_of_pieces_and_random_queries_read_like_starlette():
    for a, b in itertools.product(PIECES, repeat=2):
        query = f"{a}&{b}".encode()
        assert query_fields(query) == dict(QueryParams(query).items()), query
    rng = random.Random(5)
    for _ in range(2000):
        query = "&".join(rng.choice(PIECES) for _ in range(rng.randint(0, 6))).encode()
        assert query_fields(query) == dict(QueryParams(query).items()), query
    raw = bytes([0xE9, 0x3D, 0xFF])  # bytes that are no UTF-8, without escapes: latin-1 text, as Starlette
    assert query_fields(raw) == dict(QueryParams(raw).items())
