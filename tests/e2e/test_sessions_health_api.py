"""Session endpoints, health checks and the OpenAPI document over real HTTP."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from eventtrack.migrate import migrate
from tests.conftest import RunningServer, settings_for, throwaway_postgres
from tests.e2e.test_capture_api import assert_error

START = "/api/v1/analytics/session/start/"


def end_path(session_id) -> str:
    return f"/api/v1/analytics/session/{session_id}/end/"


def test_session_start_creates_the_row(api, db):
    response = api.post(
        START,
        json={"distinct_id": "u", "device_id": "d", "app_version": "1.0", "os_name": "Android", "properties": {"a": 1}},
    )
    assert response.status_code == 201
    body = response.json()
    session_id = uuid.UUID(body["session_id"])
    row = db.execute(
        "SELECT distinct_id, device_id, app_version, os_name, properties, started_at, ended_at FROM sessions"
    ).fetchone()
    assert row[:5] == ("u", "d", "1.0", "Android", {"a": 1})
    assert row[5] == datetime.fromisoformat(body["started_at"]) and row[6] is None
    assert session_id.version == 7


def test_session_start_with_client_id_is_idempotent(api, db):
    sid = str(uuid.uuid4())
    first = api.post(START, json={"distinct_id": "u", "session_id": sid})
    again = api.post(START.rstrip("/"), json={"distinct_id": "u", "session_id": sid})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json() == again.json()
    assert_error(api.post(START, json={"distinct_id": "other", "session_id": sid}), 409, "session_exists")
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1


def test_session_start_refuses_bad_fields_and_keeps_them(api, db):
    body = assert_error(api.post(START, json={"session_id": "abc", "started_at": "never"}), 400, "validation_error")
    assert set(body["fields"]) == {"distinct_id", "session_id", "started_at"}
    assert db.execute("SELECT endpoint, reason FROM rejected_events").fetchall() == [
        ("session/start", "validation_error")
    ]
    assert_error(api.post(START, content=b"[]", headers={"content-type": "application/json"}), 400, "not_an_object")


def test_session_times_follow_the_event_time_window(api, db):
    # Too old: refused like an event (too_old) and dead-lettered; too far ahead: clamped to now like an event.
    assert_error(
        api.post(START, json={"distinct_id": "u", "started_at": "0001-01-01T00:00:00Z"}), 400, "too_old", "started_at"
    )
    far = datetime.now(UTC) - timedelta(days=365)
    assert_error(
        api.post(START, json={"distinct_id": "u", "started_at": far.isoformat()}), 400, "too_old", "started_at"
    )
    ahead = api.post(START, json={"distinct_id": "u", "started_at": "9999-12-31T23:59:59Z"})
    assert ahead.status_code == 201 and datetime.fromisoformat(ahead.json()["started_at"]) <= datetime.now(UTC)
    sid = api.post(START, json={"distinct_id": "u"}).json()["session_id"]
    assert_error(api.put(end_path(sid), json={"ended_at": "0001-01-01T00:00:00Z"}), 400, "too_old", "ended_at")
    ended = api.put(end_path(sid), json={"ended_at": "9999-12-31T23:59:59Z"})
    assert ended.status_code == 200 and 0 <= ended.json()["duration_seconds"] < 60
    letters = db.execute("SELECT endpoint, reason FROM rejected_events ORDER BY id").fetchall()
    assert letters == [("session/start", "too_old"), ("session/start", "too_old"), ("session/end", "too_old")]
    assert db.execute("SELECT count(*) FROM sessions WHERE started_at < now() - interval '1 day'").fetchone()[0] == 0


def test_session_end_returns_duration_and_is_idempotent(api, db):
    started = datetime.now(UTC) - timedelta(minutes=10)
    sid = api.post(START, json={"distinct_id": "u", "started_at": started.isoformat()}).json()["session_id"]
    ended = started + timedelta(minutes=7, seconds=30)
    first = api.put(end_path(sid), json={"ended_at": ended.isoformat()})
    assert first.status_code == 200
    assert first.json()["duration_seconds"] == 450.0
    assert datetime.fromisoformat(first.json()["ended_at"]) == ended
    again = api.put(end_path(sid).rstrip("/"), json={"ended_at": (ended + timedelta(minutes=1)).isoformat()})
    assert again.status_code == 200 and again.json() == first.json()
    assert db.execute("SELECT end_reason, ended_at FROM sessions").fetchone() == ("client", ended)


def test_session_end_without_body_ends_now(api, db):
    sid = api.post(START, json={"distinct_id": "u"}).json()["session_id"]
    response = api.put(end_path(sid))
    assert response.status_code == 200 and response.json()["duration_seconds"] >= 0


def test_unknown_session_end_is_404(api, db):
    assert_error(api.put(end_path(uuid.uuid4()), json={}), 404, "session_not_found")
    assert_error(api.put(end_path("not-a-uuid"), json={}), 404, "session_not_found")


def test_session_end_before_start_is_400(api, db):
    started = datetime.now(UTC) - timedelta(minutes=5)
    sid = api.post(START, json={"distinct_id": "u", "started_at": started.isoformat()}).json()["session_id"]
    assert_error(
        api.put(end_path(sid), json={"ended_at": (started - timedelta(seconds=1)).isoformat()}),
        400,
        "end_before_start",
        "ended_at",
    )
    assert db.execute("SELECT ended_at FROM sessions").fetchone()[0] is None
    assert db.execute("SELECT endpoint, reason FROM rejected_events").fetchall() == [
        ("session/end", "end_before_start")
    ]


def test_healthz_and_readyz(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}


def test_openapi_document_covers_every_route_and_method(api):
    from ingest_api.app import routes

    doc = api.get("/api/v1/analytics/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    served = {}
    for route in routes():
        path = (
            route.path
            if route.path.endswith("/") or route.path + "/" not in {r.path for r in routes()}
            else route.path + "/"
        )
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)  # a convertor ({id:path}) is not part of the documented path
        served.setdefault(path, set()).update(m.lower() for m in route.methods - {"HEAD"})
    documented = {path: set(ops) for path, ops in doc["paths"].items()}
    assert documented == served
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["responses"] and op["operationId"]


def test_database_outage_answers_503_quickly_and_recovers(tmp_path):
    """Stops the database under a running server: 503 + Retry-After fast, then recovery without restart."""
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        with (
            RunningServer(settings_for(url, commit_timeout_seconds=3.0)) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            event = {"distinct_id": "u", "event": "before"}
            assert client.post("/api/v1/analytics/capture/", json=event).status_code == 200

            pg.kill()
            for path, kwargs in [
                ("/api/v1/analytics/capture/", {"json": {"distinct_id": "u", "event": "during"}}),
                ("/api/v1/analytics/batch/", {"json": {"events": [{"distinct_id": "u", "event": "during"}]}}),
                ("/api/v1/analytics/session/start/", {"json": {"distinct_id": "u"}}),
                (
                    "/api/v1/analytics/capture/",
                    {"content": b"{bad json", "headers": {"content-type": "application/json"}},
                ),
            ]:
                began = time.monotonic()
                response = client.post(path, **kwargs)
                assert time.monotonic() - began < 5, path
                assert_error(response, 503, "service_unavailable")
                assert int(response.headers["retry-after"]) > 0
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200

            pg.restart()
            deadline = time.monotonic() + 15
            while (
                client.post("/api/v1/analytics/capture/", json={"distinct_id": "u", "event": "after"}).status_code
                != 200
            ):
                assert time.monotonic() < deadline, "service did not recover"
                time.sleep(0.2)
            assert client.get("/readyz").status_code == 200
            assert client.post(START, json={"distinct_id": "u"}).status_code == 201

        import psycopg

        with psycopg.connect(url) as conn:
            kinds = [r[0] for r in conn.execute("SELECT event_type FROM events ORDER BY ingest_seq")]
        assert kinds[0] == "before" and "after" in kinds and "during" not in kinds
