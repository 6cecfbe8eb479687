"""PostHog payloads → native events, and PostHog body decoding (pure)."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from starlette.requests import Request

from eventtrack.errors import ApiError
from ingest_api.posthog.decode import decode_body, decode_request_body
from ingest_api.posthog.translate import NotAPayload, person_update, read_payload, translate_event
from ingest_api.validation import Limits, normalize_event

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMITS = Limits(
    max_event_bytes=65536,
    max_properties_depth=32,
    max_future=timedelta(hours=23),
    oldest_allowed=NOW - timedelta(days=90),
)


def test_properties_that_have_native_columns_become_columns_and_leave_properties():
    native = translate_event(
        {
            "event": "purchase",
            "distinct_id": "u1",
            "properties": {
                "$session_id": "s1",
                "$device_id": "d1",
                "$app_version": "2.0",
                "$os": "iOS",
                "$os_version": "17.1",
                "$lib": "posthog-ios",
                "amount": 3,
            },
            "uuid": "0190f5d2-7d6b-7cc0-8a4e-2d4bbd3b9e01",
        },
        now=NOW,
    )
    assert native["session_id"] == "s1" and native["device_id"] == "d1" and native["app_version"] == "2.0"
    assert native["os_name"] == "iOS" and native["os_version"] == "17.1"
    assert native["properties"] == {"$lib": "posthog-ios", "amount": 3}
    row = normalize_event(native, received_at=NOW, batch_sent_at=None, limits=LIMITS, sanitize=False)
    assert (row.event_type, row.distinct_id, row.session_id, row.os_name) == ("purchase", "u1", "s1", "iOS")
    assert str(row.uuid) == "0190f5d2-7d6b-7cc0-8a4e-2d4bbd3b9e01"


def test_a_non_string_column_property_stays_in_properties():
    native = translate_event({"event": "e", "distinct_id": "u", "properties": {"$app_version": 7}}, now=NOW)
    assert "app_version" not in native and native["properties"] == {"$app_version": 7}


def test_distinct_id_is_read_from_the_event_then_dollar_then_properties():
    assert translate_event({"event": "e", "$distinct_id": "a"}, now=NOW)["distinct_id"] == "a"
    assert translate_event({"event": "e", "properties": {"distinct_id": "b"}}, now=NOW)["distinct_id"] == "b"
    assert (
        translate_event({"event": "e", "distinct_id": "c", "properties": {"distinct_id": "b"}}, now=NOW)["distinct_id"]
        == "c"
    )


def test_offset_wins_over_timestamp_and_is_not_skew_corrected_again():
    native = translate_event(
        {"event": "e", "distinct_id": "u", "offset": 1500, "timestamp": "2020-01-01T00:00:00Z"}, now=NOW
    )
    row = normalize_event(
        native, received_at=NOW, batch_sent_at=NOW + timedelta(hours=5), limits=LIMITS, sanitize=False
    )
    assert row.timestamp == NOW - timedelta(milliseconds=1500)


def test_timestamp_with_batch_sent_at_is_corrected_for_the_client_clock():
    native = translate_event({"event": "e", "distinct_id": "u", "timestamp": "2026-11-25T14:59:00Z"}, now=NOW)
    row = normalize_event(
        native, received_at=NOW, batch_sent_at=datetime(2026, 11, 25, 15, tzinfo=UTC), limits=LIMITS, sanitize=False
    )
    assert row.timestamp == NOW - timedelta(minutes=1)


def test_invalid_offsets_are_ignored():
    for offset in (True, "10", -5, float("inf")):
        native = translate_event(
            {"event": "e", "distinct_id": "u", "offset": offset, "timestamp": "2026-11-25T11:00:00Z"}, now=NOW
        )
        assert native["timestamp"] == "2026-11-25T11:00:00Z"


def test_top_level_set_and_set_once_are_kept_under_properties():
    native = translate_event(
        {
            "event": "$identify",
            "distinct_id": "u",
            "$set": {"plan": "pro"},
            "$set_once": {"first": 1},
            "properties": {"$set": {"plan": "free", "x": 1}},
        },
        now=NOW,
    )
    assert native["properties"]["$set"] == {"plan": "pro", "x": 1}
    assert native["properties"]["$set_once"] == {"first": 1}
    assert translate_event({"event": "e", "distinct_id": "u", "$set": {"a": 1}}, now=NOW)["properties"] == {
        "$set": {"a": 1}
    }


def test_invalid_events_are_left_for_the_validator():
    assert translate_event([1], now=NOW) == [1]
    assert translate_event({"event": "e", "distinct_id": "u", "properties": "x"}, now=NOW)["properties"] == "x"


def test_payload_shapes_batch_array_and_single_event_with_their_keys():
    batch = read_payload(
        {"api_key": "k", "batch": [{"event": "a"}], "sent_at": "2026-11-25T12:00:00Z", "historical_migration": False}
    )
    assert (batch.events, batch.sent_at, batch.token, batch.is_batch) == (
        [{"event": "a"}],
        "2026-11-25T12:00:00Z",
        "k",
        True,
    )
    array = read_payload([{"event": "a", "properties": {"token": "t"}}])
    assert array.is_batch and array.token == "t"
    single = read_payload({"event": "a", "token": "t2"})
    assert not single.is_batch and single.events == [{"event": "a", "token": "t2"}] and single.token == "t2"
    with pytest.raises(NotAPayload):
        read_payload("text")
    with pytest.raises(NotAPayload):
        read_payload({"batch": {"event": "a"}})


def test_person_update_only_for_events_that_change_a_person():
    assert (
        person_update(translate_event({"event": "e", "distinct_id": "u", "properties": {"a": 1}}, now=NOW), "u", NOW)
        is None
    )
    update = person_update(
        translate_event(
            {"event": "$identify", "distinct_id": "u", "properties": {"$anon_distinct_id": "anon", "$set": {"a": 1}}},
            now=NOW,
        ),
        "u",
        NOW,
    )
    assert (update.set, update.set_once, update.merge_from) == ({"a": 1}, {}, "anon")
    alias = person_update({"event": "$create_alias", "properties": {"alias": "other"}}, "u", NOW)
    assert alias.merge_from == "other"
    assert person_update({"event": "$identify", "properties": {"$anon_distinct_id": "u"}}, "u", NOW).merge_from is None


# --- decoding ---------------------------------------------------------------

BODY = json.dumps({"batch": [{"event": "e", "distinct_id": "u"}]}).encode()


def decode(raw, content_type="application/json", encoding=None, compression=None):
    return decode_body(
        raw, content_type=content_type, encoding_header=encoding, compression=compression, limit=1_000_000
    )


def test_plain_gzip_header_query_and_magic_bytes_all_decode():
    assert decode(BODY) == BODY
    assert decode(gzip.compress(BODY), encoding="gzip") == BODY
    assert decode(gzip.compress(BODY), compression="gzip-js") == BODY
    assert decode(gzip.compress(BODY), compression="gzip") == BODY
    assert decode(gzip.compress(BODY), content_type="text/plain") == BODY  # magic bytes, no header


def test_base64_body_and_legacy_form_body():
    assert decode(base64.b64encode(BODY), compression="base64") == BODY
    form = b"data=" + quote(base64.b64encode(BODY).decode()).encode()
    assert decode(form, content_type="application/x-www-form-urlencoded") == BODY
    form_gzip = b"data=" + quote(base64.b64encode(gzip.compress(BODY)).decode()).encode() + b"&compression=gzip-js"
    assert decode(form_gzip, content_type="application/x-www-form-urlencoded") == BODY
    assert (
        decode(b"data=" + base64.b64encode(BODY).replace(b"+", b" "), content_type="application/x-www-form-urlencoded")
        == BODY
    )


@pytest.mark.parametrize(
    "raw, kwargs, status, code",
    [
        (b"\x1f\x8bnot gzip", {}, 400, "invalid_gzip"),
        (b"!!!", {"compression": "base64"}, 400, "invalid_base64"),
        (BODY, {"compression": "lz64"}, 415, "unsupported_encoding"),
        (b"x=1", {"content_type": "application/x-www-form-urlencoded"}, 400, "invalid_form"),
        (
            b"data=%C3%A9%C3%A9",
            {"content_type": "application/x-www-form-urlencoded"},
            400,
            "invalid_base64",
        ),  # found by schemathesis: was a 500
        (BODY, {"content_type": "image/png"}, 415, "unsupported_media_type"),
        (BODY, {"encoding": "br"}, 415, "unsupported_encoding"),
    ],
)
def test_undecodable_bodies_are_refused_with_native_codes(raw, kwargs, status, code):
    with pytest.raises(ApiError) as refused:
        decode(raw, **kwargs)
    assert (refused.value.status, refused.value.code) == (status, code)


def test_a_gzip_bomb_stops_at_the_limit():
    with pytest.raises(ApiError) as refused:
        decode_body(
            gzip.compress(b"[" + b" " * 2_000_000 + b"]"),
            content_type="",
            encoding_header=None,
            compression=None,
            limit=100_000,
        )
    assert refused.value.code == "payload_too_large"


def test_a_request_body_is_decoded_as_its_headers_and_query_describe_it():
    payload = b'{"event": "e"}'
    request = Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/e/",
            "headers": [(b"content-type", b"text/plain"), (b"content-encoding", b"gzip")],
            "query_string": b"compression=base64",
        }
    )
    # base64 of gzip: the query's compression, then the header's encoding
    assert decode_request_body(base64.b64encode(gzip.compress(payload)), request, 1000) == payload
    with pytest.raises(ApiError) as info:
        decode_request_body(base64.b64encode(payload), request, 1000)
    assert info.value.code == "invalid_gzip"
