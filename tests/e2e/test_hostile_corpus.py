"""A corpus of hostile requests: none may get a 5xx, and each gets its documented answer.

Each case is (name, method, path, headers, body, expected status, expected error code or None).
The documented outcomes are in docs/event_tracking_schema.md and docs/security.md.
"""

from __future__ import annotations

import gzip
import socket
import time
import uuid

import orjson
import pytest

CAPTURE = "/api/v1/analytics/capture/"
BATCH = "/api/v1/analytics/batch/"
START = "/api/v1/analytics/session/start/"
JSON = {"content-type": "application/json"}
GZ = {**JSON, "content-encoding": "gzip"}


def _event(**fields) -> bytes:
    return orjson.dumps({"distinct_id": "u", "event": "x", **fields})


def _nested(depth: int) -> bytes:
    return b'{"distinct_id": "u", "event": "x", "properties": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


_SQL = "'; DROP TABLE events; --"
_FORMAT = "%s%n%x{0}{__class__}%(x)s${jndi:ldap://x}"

CASES = [
    (
        "nul in keys and values",
        "POST",
        CAPTURE,
        JSON,
        b'{"distinct_id": "u\\u0000", "event": "x", "properties": {"k\\u0000": "\\u0000v"}}',
        200,
        None,
    ),
    ("invalid utf-8", "POST", CAPTURE, JSON, b'{"distinct_id": "\xff\xfe", "event": "x"}', 400, "invalid_json"),
    ("lone surrogate", "POST", CAPTURE, JSON, b'{"distinct_id": "u", "event": "\\udc00"}', 200, None),
    ("10k-deep nesting", "POST", CAPTURE, JSON, _nested(10_000), 400, "invalid_json"),
    ("properties 40 deep", "POST", CAPTURE, JSON, _nested(40), 400, "too_deep"),
    (
        "1M-element array in a batch",
        "POST",
        BATCH,
        JSON,
        b'{"events": [' + b",".join([b"0"] * 1_000_000) + b"]}",
        400,
        "batch_too_large",
    ),
    (
        "1M-element array in properties",
        "POST",
        CAPTURE,
        JSON,
        b'{"distinct_id": "u", "event": "x", "properties": {"a": [' + b",".join([b"0"] * 1_000_000) + b"]}}",
        413,
        "payload_too_large",
    ),
    (
        "huge integer",
        "POST",
        CAPTURE,
        JSON,
        b'{"distinct_id": "u", "event": "x", "properties": {"n": ' + b"9" * 400 + b"}}",
        400,
        "invalid_number",
    ),
    (
        "integer beyond 64 bits",
        "POST",
        CAPTURE,
        JSON,
        b'{"distinct_id": "u", "event": "x", "properties": {"n": ' + b"9" * 30 + b"}}",
        200,
        None,
    ),
    (
        "number beyond a double",
        "POST",
        CAPTURE,
        JSON,
        b'{"distinct_id": "u", "event": "x", "properties": {"n": 1e999}}',
        400,
        "invalid_number",
    ),
    (
        "NaN literal",
        "POST",
        CAPTURE,
        JSON,
        b'{"distinct_id": "u", "event": "x", "properties": {"n": NaN}}',
        400,
        "invalid_number",
    ),
    (
        "Infinity literal",
        "POST",
        CAPTURE,
        JSON,
        b'{"distinct_id": "u", "event": "x", "properties": {"n": -Infinity}}',
        400,
        "invalid_number",
    ),
    ("duplicate keys", "POST", CAPTURE, JSON, b'{"distinct_id": "a", "distinct_id": "b", "event": "x"}', 200, None),
    ("gzip bomb", "POST", BATCH, GZ, gzip.compress(b" " * (64 * 1024 * 1024)), 413, "payload_too_large"),
    (
        "truncated gzip",
        "POST",
        CAPTURE,
        GZ,
        gzip.compress(_event(properties={"a": "b" * 1000}))[:-30],
        400,
        "invalid_gzip",
    ),
    ("gzip header but plain body", "POST", CAPTURE, GZ, _event(), 400, "invalid_gzip"),
    (
        "sql in every field",
        "POST",
        CAPTURE,
        JSON,
        _event(
            distinct_id=_SQL,
            event=_SQL,
            device_id=_SQL,
            session_id=_SQL,
            app_version=_SQL,
            os_name=_SQL,
            os_version=_SQL,
            properties={_SQL: _SQL},
        ),
        200,
        None,
    ),
    (
        "format strings in every field",
        "POST",
        CAPTURE,
        JSON,
        _event(distinct_id=_FORMAT, event=_FORMAT, device_id=_FORMAT, properties={_FORMAT: _FORMAT}),
        200,
        None,
    ),
    ("year 0001", "POST", CAPTURE, JSON, _event(timestamp="0001-01-01T00:00:00Z"), 400, "too_old"),
    ("year 9999", "POST", CAPTURE, JSON, _event(timestamp="9999-12-31T23:59:59Z"), 200, None),
    (
        "negative sent_at",
        "POST",
        CAPTURE,
        JSON,
        _event(timestamp="2026-01-01T00:00:00Z", sent_at=-1),
        400,
        "validation_error",
    ),
    (
        "absurd sent_at",
        "POST",
        CAPTURE,
        JSON,
        _event(timestamp="2026-11-25T00:00:00Z", sent_at="0001-01-01T00:00:00Z"),
        200,
        None,
    ),
    (
        "sent_at far future",
        "POST",
        CAPTURE,
        JSON,
        _event(timestamp="0001-01-02T00:00:00Z", sent_at="9999-12-31T00:00:00Z"),
        400,
        "too_old",
    ),
    (
        "unknown session end",
        "PUT",
        f"/api/v1/analytics/session/{uuid.uuid4()}/end/",
        JSON,
        b"{}",
        404,
        "session_not_found",
    ),
    (
        "session id that is not a uuid",
        "PUT",
        "/api/v1/analytics/session/%27%3B--/end/",
        JSON,
        b"{}",
        404,
        "session_not_found",
    ),
    (
        "10k events in one batch",
        "POST",
        BATCH,
        JSON,
        orjson.dumps({"events": [{"distinct_id": "u", "event": "x"}] * 10_000}),
        400,
        "batch_too_large",
    ),
    ("empty body", "POST", CAPTURE, JSON, b"", 400, "invalid_json"),
    ("json null", "POST", BATCH, JSON, b"null", 400, "not_an_object"),
    ("events is a string", "POST", BATCH, JSON, b'{"events": "x"}', 400, "invalid_batch"),
    ("event is a number", "POST", BATCH, JSON, b'{"events": [1]}', 200, None),
    (
        "form body",
        "POST",
        CAPTURE,
        {"content-type": "application/x-www-form-urlencoded"},
        b"a=b",
        415,
        "unsupported_media_type",
    ),
    ("brotli", "POST", CAPTURE, {**JSON, "content-encoding": "br"}, b"\x00", 415, "unsupported_encoding"),
    (
        "session start with nested garbage",
        "POST",
        START,
        JSON,
        b'{"distinct_id": {"$gt": ""}, "properties": "x"}',
        400,
        "validation_error",
    ),
    (
        "flags for_user with nul",
        "GET",
        "/api/v1/analytics/public/feature-flags/for_user/?distinct_id=%00",
        {},
        b"",
        200,
        None,
    ),
    (
        "flags for_user bad properties",
        "GET",
        "/api/v1/analytics/public/feature-flags/for_user/?distinct_id=u&properties=%5B",
        {},
        b"",
        400,
        "validation_error",
    ),
    ("admin without key", "GET", "/api/v1/analytics/admin/events/?limit=-1", {}, b"", 401, "unauthorized"),
]


@pytest.mark.parametrize("name, method, path, headers, body, status, code", CASES, ids=[c[0] for c in CASES])
def test_hostile_request_gets_its_documented_answer(api, db, name, method, path, headers, body, status, code):
    response = api.request(method, path, content=body, headers=headers)
    assert response.status_code < 500
    assert response.status_code == status, response.text[:300]
    if code is not None:
        assert response.json()["error"] == code


def test_sql_and_format_strings_round_trip_byte_for_byte(api, db):
    assert (
        api.post(
            CAPTURE, content=_event(distinct_id=_SQL, event=_FORMAT, properties={_SQL: _FORMAT}), headers=JSON
        ).status_code
        == 200
    )
    assert db.execute("SELECT distinct_id, event_type, properties FROM events").fetchone() == (
        _SQL,
        _FORMAT,
        {_SQL: _FORMAT},
    )


def _raw_http(port: int, request: bytes, pause_between: list[bytes] | None = None, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        for chunk in pause_between or []:
            time.sleep(0.1)
            sock.sendall(chunk)
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        return data


def test_slow_body_is_still_read_and_accepted(server, db):
    body = _event()
    head = f"POST {CAPTURE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    chunks = [body[i : i + 5] for i in range(0, len(body), 5)]
    answer = _raw_http(server.port, head, chunks)
    assert answer.startswith(b"HTTP/1.1 200")


def test_content_length_longer_than_the_body_does_not_break_the_server(server, db, api):
    head = (
        f"POST {CAPTURE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + b'{"distinct_id": "u"')  # then the client gives up
    from tests.conftest import wait_until

    wait_until(lambda: db.execute("SELECT reason FROM rejected_events").fetchall() == [("client_disconnected",)])
    assert api.get("/healthz").status_code == 200
    assert 'status="500"' not in api.get("/metrics").text
    assert api.post(CAPTURE, json={"distinct_id": "u", "event": "after"}).status_code == 200


def test_content_length_shorter_than_the_body_is_a_client_error(server, db):
    body = _event()
    head = (
        f"POST {CAPTURE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n".encode()
    )
    answer = _raw_http(server.port, head + body)
    assert answer.startswith(b"HTTP/1.1 400")
