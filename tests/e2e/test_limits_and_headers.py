"""Rate limits, CORS and request ids over real HTTP."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest

from tests.conftest import RunningServer, settings_for, wait_until
from tests.e2e.test_capture_api import assert_error
from tests.e2e.test_metrics import metric

CAPTURE = "/api/v1/analytics/capture/"


def test_rate_limit_answers_429_with_retry_after_per_client(database_url, db):
    settings = settings_for(database_url, rate_limit_per_second=1.0, rate_limit_burst=3)
    with RunningServer(settings) as server, httpx.Client(base_url=server.url) as client:
        statuses = [client.post(CAPTURE, json={"distinct_id": "u", "event": "x"}).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        limited = client.post(CAPTURE, json={"distinct_id": "u", "event": "x"})
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        # Another address (X-Forwarded-For from the trusted local proxy) is another client; health checks are never limited.
        assert (
            client.post(
                CAPTURE, json={"distinct_id": "u", "event": "x"}, headers={"X-Forwarded-For": "203.0.113.9"}
            ).status_code
            == 200
        )
        assert client.get("/healthz").status_code == 200
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 4


def test_made_up_api_keys_share_their_address_bucket(database_url, db):
    settings = settings_for(database_url, rate_limit_per_second=0.2, rate_limit_burst=3)  # a token back every 5 s
    with RunningServer(settings) as server, httpx.Client(base_url=server.url) as client:
        # No write key is active: a new key per request is no new client.
        statuses = [
            client.post(
                CAPTURE, json={"distinct_id": "u", "event": "x"}, headers={"X-API-Key": f"made-up-{i}"}
            ).status_code
            for i in range(5)
        ]
        assert statuses == [200, 200, 200, 429, 429]
        assert (
            client.post(
                CAPTURE, json={"distinct_id": "u", "event": "x"}, params={"api_key": "made-up-query"}
            ).status_code
            == 429
        )


def test_an_active_write_key_is_a_client_of_its_own(database_url, db, write_key):
    settings = settings_for(database_url, rate_limit_per_second=0.2, rate_limit_burst=3)
    with (
        RunningServer(settings) as server,
        httpx.Client(base_url=server.url) as client,
    ):  # loads the active key at start
        wrong = [
            client.post(
                CAPTURE, json={"distinct_id": "u", "event": "x"}, headers={"X-API-Key": f"wrong-{i}"}
            ).status_code
            for i in range(4)
        ]
        assert wrong == [401, 401, 401, 429]
        event = {"distinct_id": "u", "event": "x"}
        valid = [client.post(CAPTURE, json=event, headers={"X-API-Key": write_key}).status_code for _ in range(4)]
        assert valid == [200, 200, 200, 429]
        assert (
            client.post(
                CAPTURE, json=event, headers={"X-API-Key": write_key, "X-Forwarded-For": "203.0.113.9"}
            ).status_code
            == 429
        )


def test_rate_limit_is_off_by_default(api):
    assert {api.post(CAPTURE, json={"distinct_id": "u", "event": "x"}).status_code for _ in range(150)} == {200}


def test_cors_allows_configured_origins_only(database_url):
    settings = settings_for(database_url, cors_allow_origins=("https://app.example.com",))
    with RunningServer(settings) as server, httpx.Client(base_url=server.url) as client:
        preflight = client.options(
            CAPTURE,
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        other = client.get("/healthz", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers


def test_cors_is_off_by_default(api):
    assert "access-control-allow-origin" not in api.get("/healthz", headers={"Origin": "https://a.example.com"}).headers


def test_request_id_is_echoed_or_made(api):
    assert api.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = api.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert len(made) == 32 and made != "bad id\twith spaces"


# --- bodies: over-limit Content-Length, clients gone mid-body --------------------------------

ADMIN = "/api/v1/analytics/admin"
BODY_ENDPOINTS = [
    ("POST", CAPTURE, "application/json"),
    ("POST", "/api/v1/analytics/batch/", "application/json"),
    ("POST", "/api/v1/analytics/session/start/", "application/json"),
    ("PUT", "/api/v1/analytics/session/0193a6a4-1111-7000-8000-000000000001/end/", "application/json"),
    ("POST", "/api/v1/analytics/public/feature-flags/for_user/", "application/json"),
    ("POST", "/batch/", "application/json"),
    ("POST", "/e/", "application/json"),
    ("POST", "/flags/?v=2", "application/json"),
    ("POST", "/decide/?v=3", "application/json"),
    ("POST", "/ofrep/v1/evaluate/flags", "application/json"),
    ("POST", f"{ADMIN}/feature-flags/", "application/json"),
    ("PATCH", f"{ADMIN}/feature-flags/1/", "application/json"),
    ("POST", f"{ADMIN}/funnels/saved/", "application/json"),
    ("POST", f"{ADMIN}/experiments/", "application/json"),
    ("POST", "/admin/login", "application/x-www-form-urlencoded"),
]


def _request_head(method: str, path: str, content_type: str, length: int, admin_key: str) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
        f"Authorization: Bearer {admin_key}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("method, path, content_type", BODY_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in BODY_ENDPOINTS])
def test_a_content_length_over_the_limit_is_413_at_once_without_reading_the_body(
    server, admin_key, method, path, content_type
):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_request_head(method, path, content_type, 100_000_000, admin_key) + b'{"a": 1234')
        answer = b""
        while b"\r\n\r\n" not in answer:  # nothing more is sent: before the fix, this waited for 64 KiB
            part = sock.recv(65536)
            assert part, answer
            answer += part
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


@pytest.fixture
def server_log(caplog):
    """Every record of the app and of uvicorn (whose loggers do not propagate to the root)."""
    uvicorn_log = logging.getLogger("uvicorn")
    uvicorn_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    yield caplog
    uvicorn_log.removeHandler(caplog.handler)


def test_a_client_gone_mid_body_is_counted_and_not_logged(server, api, admin_key, server_log):
    def disconnects() -> float:
        return metric(api.get("/metrics").text, "eventtrack_client_disconnects_total")

    before = disconnects()
    for method, path, content_type in BODY_ENDPOINTS:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(_request_head(method, path, content_type, 1000, admin_key) + b'{"distinct_id": "u"')
    # And the probe's case: a Content-Length over the limit, then gone (answered from the header, nothing to count).
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_request_head("POST", CAPTURE, "application/json", 2_000_000, admin_key) + b"0123456789")
    wait_until(lambda: disconnects() - before == len(BODY_ENDPOINTS))
    assert api.get("/healthz").status_code == 200
    problems = [r for r in server_log.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]
