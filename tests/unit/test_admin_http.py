"""The admin handlers' shared request readers (ingest_api/admin/http.py): path ids and text filters (pure)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from eventtrack.errors import ApiError
from ingest_api.admin.http import path_id, text_filters

NOT_FOUND = ApiError.of("not_found", "No row has this id.", {"id": "unknown"})


def request(query: bytes = b"", **path_params: str) -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": "/", "query_string": query, "headers": [], "path_params": path_params}
    )


@pytest.mark.parametrize("raw, expected", [("1", 1), ("42", 42), (str(2**63 - 1), 2**63 - 1)])
def test_a_positive_bigint_is_the_id(raw, expected):
    assert path_id(request(flag_id=raw), "flag_id", NOT_FOUND) == expected


@pytest.mark.parametrize("raw", ["0", "-1", str(2**63), "abc", "", "²", "1.5"])
def test_anything_else_is_not_found(raw):
    with pytest.raises(ApiError) as caught:
        path_id(request(flag_id=raw), "flag_id", NOT_FOUND)
    assert caught.value is NOT_FOUND


def test_text_filters_take_the_set_parameters_only():
    where, params = text_filters(
        request(b"event_type=signup&os_name=&other=x"), ("event_type", "os_name", "app_version")
    )
    assert where == ["event_type = :event_type"]
    assert params == {"event_type": "signup"}


def test_text_filters_refuse_nul_and_overlong_values():
    for query in (b"event_type=a%00b", b"event_type=" + b"x" * 201):
        with pytest.raises(ApiError) as caught:
            text_filters(request(query), ("event_type",))
        assert (caught.value.status, caught.value.code, caught.value.fields) == (
            400,
            "invalid_parameter",
            {"event_type": "invalid"},
        )
