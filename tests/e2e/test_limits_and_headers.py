"""Rate limits, CORS and request ids over real HTTP."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer, settings_for
from tests.e2e.test_capture_api import assert_error

CAPTURE = "/api/v1/analytics/capture/"


def test_rate_limit_answers_429_with_retry_after_per_client(database_url, db):
    settings = settings_for(database_url, rate_limit_per_second=1.0, rate_limit_burst=3)
    with RunningServer(settings) as server, httpx.Client(base_url=server.url) as client:
        statuses = [client.post(CAPTURE, json={"distinct_id": "u", "event": "x"}).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        limited = client.post(CAPTURE, json={"distinct_id": "u", "event": "x"})
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        # Another API key is another client; health checks are never limited.
        assert client.post(CAPTURE, json={"distinct_id": "u", "event": "x"}, headers={"X-API-Key": "app-2"}).status_code == 200
        assert client.get("/healthz").status_code == 200
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 4


def test_rate_limit_is_off_by_default(api):
    assert {api.post(CAPTURE, json={"distinct_id": "u", "event": "x"}).status_code for _ in range(150)} == {200}


def test_cors_allows_configured_origins_only(database_url):
    settings = settings_for(database_url, cors_allow_origins=("https://app.example.com",))
    with RunningServer(settings) as server, httpx.Client(base_url=server.url) as client:
        preflight = client.options(
            CAPTURE, headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
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
