import gzip
import math

import pytest

from eventtrack.errors import ApiError
from ingest_api.decode import check_content_type, content_encoding, gunzip_limited, parse_json, parse_json_object


def test_gzip_roundtrip():
    assert gunzip_limited(gzip.compress(b'{"a": 1}'), 100) == b'{"a": 1}'


def test_zip_bomb_is_refused_without_inflating_it_all():
    bomb = gzip.compress(b"0" * 50_000_000)
    with pytest.raises(ApiError) as info:
        gunzip_limited(bomb, 1024 * 1024)
    assert info.value.status == 413


def test_truncated_gzip_is_refused():
    data = gzip.compress(b'{"a": "' + b"x" * 1000 + b'"}')
    with pytest.raises(ApiError) as info:
        gunzip_limited(data[: len(data) // 2], 10_000)
    assert info.value.code == "invalid_gzip"


def test_not_gzip_is_refused():
    with pytest.raises(ApiError) as info:
        gunzip_limited(b'{"a": 1}', 100)
    assert info.value.code == "invalid_gzip"


@pytest.mark.parametrize(
    "ctype", [None, "application/json", "application/json; charset=utf-8", "text/plain", "application/vnd.api+json"]
)
def test_json_content_types_are_read(ctype):
    check_content_type(ctype)


@pytest.mark.parametrize("ctype", ["application/xml", "multipart/form-data; boundary=x", "image/png"])
def test_other_content_types_are_415(ctype):
    with pytest.raises(ApiError) as info:
        check_content_type(ctype)
    assert info.value.status == 415


def test_unknown_content_encoding_is_415():
    with pytest.raises(ApiError) as info:
        content_encoding("br")
    assert info.value.status == 415
    assert content_encoding("GZIP") == "gzip"


def test_lone_surrogate_falls_back_to_tolerant_parser():
    value, needs_sanitizing = parse_json(b'{"a": "\\ud800"}')
    assert value == {"a": "\ud800"} and needs_sanitizing


def test_nan_literal_is_parsed_for_per_event_refusal():
    value, needs_sanitizing = parse_json(b'{"a": NaN, "b": Infinity}')
    assert math.isnan(value["a"]) and value["b"] == math.inf and needs_sanitizing


def test_huge_integer_becomes_a_double_like_orjson_does():
    value, _ = parse_json(b'{"a": 123456789012345678901234567890}')
    assert isinstance(value["a"], float)


def test_thousands_of_digits_are_out_of_range_not_a_crash():
    value, _ = parse_json(b'{"a": ' + b"9" * 5000 + b', "b": "\\ud800"}')
    assert value["a"] == math.inf


def test_escaped_nul_is_flagged_for_sanitizing():
    _, needs_sanitizing = parse_json(b'{"a": "x\\u0000"}')
    assert needs_sanitizing


@pytest.mark.parametrize("body", [b"{", b"", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"a": 1,}'])
def test_malformed_json_is_invalid_json(body):
    with pytest.raises(ApiError) as info:
        parse_json(body)
    assert info.value.code == "invalid_json" and info.value.status == 400


def test_duplicate_keys_last_one_wins():
    assert parse_json(b'{"a": 1, "a": 2}')[0] == {"a": 2}


def test_integer_beyond_a_double_is_out_of_range_not_a_crash():
    value, _ = parse_json(b'{"a": ' + b"9" * 400 + b"}")
    assert value["a"] == math.inf


@pytest.mark.parametrize("body, expected", [(b"", {}), (b"  \n", {}), (b'{"distinct_id": "u"}', {"distinct_id": "u"})])
def test_an_optional_object_body_reads_empty_as_no_fields(body, expected):
    assert parse_json_object(body) == expected


@pytest.mark.parametrize("body", [b"[]", b"1", b'"u"', b"null"])
def test_an_optional_object_body_refuses_anything_but_an_object(body):
    with pytest.raises(ApiError) as info:
        parse_json_object(body)
    assert (info.value.code, info.value.fields) == ("not_an_object", {"body": "must be an object"})
