"""Export, audit log, authorization and client-IP storage of the privacy operations, over real HTTP."""

from __future__ import annotations

import base64
import gzip
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import orjson
import pytest

from tests.conftest import RunningServer, settings_for

API = "/api/v1/analytics"
PERSONS = f"{API}/admin/persons"
AUDIT = f"{API}/admin/audit-log/"
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    "method, path",
    [
        ("DELETE", f"{PERSONS}/alice/"),
        ("GET", f"{PERSONS}/alice/export/"),
        ("GET", AUDIT),
        ("DELETE", f"{PERSONS}/alice"),
    ],
)
def test_privacy_routes_refuse_requests_without_a_valid_admin_key(api, admin_key, db, method, path):
    api.post(f"{API}/capture/", json={"distinct_id": "alice", "event_type": "e"})
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {admin_key}"},
        {"Authorization": "Bearer etadm_wrong"},
    ):
        response = api.request(method, path, headers=headers)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 0


def test_export_returns_every_row_of_the_person_across_pages(api, admin, db):
    now = datetime.now(UTC)
    events = [
        {
            "distinct_id": "dora",
            "event_type": f"e{i % 7}",
            "timestamp": (now - timedelta(days=i % 4, minutes=i)).isoformat(),
            "properties": {"i": i},
        }
        for i in range(2300)  # more than two pages of 1000
    ]
    for start in range(0, len(events), 1000):
        assert api.post(f"{API}/batch/", json={"events": events[start : start + 1000]}).json()["accepted"] == len(
            events[start : start + 1000]
        )
    api.post(f"{API}/capture/", json={"distinct_id": "other", "event_type": "e"})
    session_id = api.post(f"{API}/session/start/", json={"distinct_id": "dora"}).json()["session_id"]
    identify = {
        "event": "$identify",
        "distinct_id": "dora",
        "properties": {"$anon_distinct_id": "dora-anon", "$set": {"plan": "pro"}},
    }
    assert api.post("/capture/", json={"api_key": "k", **identify}).status_code == 200
    gz = gzip.compress(b'{"distinct_id": "dora", ')
    assert api.post(f"{API}/capture/", content=gz, headers={**JSON, "content-encoding": "gzip"}).status_code == 400
    assert api.post(f"{API}/capture/", content=b'{"distinct_id": "dora", ', headers=JSON).status_code == 400

    response = admin.get(f"{PERSONS}/dora-anon/export/")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = orjson.loads(response.content)
    assert body["person_distinct_id"] == "dora" and body["distinct_ids"] == ["dora", "dora-anon"]
    assert body["person"]["properties"] == {"plan": "pro"}
    assert [m["alias"] for m in body["merged_ids"]] == ["dora-anon"]
    stored = {str(u) for (u,) in db.execute("SELECT uuid FROM events WHERE distinct_id IN ('dora', 'dora-anon')")}
    assert {e["uuid"] for e in body["events"]} == stored and len(body["events"]) == len(stored) == 2301
    assert [e["timestamp"] for e in body["events"]] == sorted(e["timestamp"] for e in body["events"])
    assert [s["session_id"] for s in body["sessions"]] == [session_id]
    letters = body["rejected_events"]
    assert sorted(letters, key=lambda r: r["id"]) == letters and len(letters) == 2
    assert base64.b64decode(letters[0]["payload_base64"]) == gz
    assert letters[1]["payload_text"] == '{"distinct_id": "dora", '
    # Audited, with the counts at the time; nothing is deleted by an export.
    (audit,) = admin.get(AUDIT, params={"action": "export_person"}).json()["results"]
    assert audit["details"]["counts"] == {"events": 2301, "sessions": 1} and audit["id"] == body["audit_id"]
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 2302


def test_export_of_an_unknown_id_is_an_empty_document(admin, db):
    body = admin.get(f"{PERSONS}/nobody/export/").json()
    assert (
        body["person"] is None
        and body["events"] == body["sessions"] == body["rejected_events"] == body["merged_ids"] == []
    )


def test_ids_with_slashes_line_breaks_and_unicode_are_addressable(api, admin, db):
    for user in ("org/42", "zoë ✓", "\nline\nbreaks\n", "tail\n"):
        assert api.post(f"{API}/capture/", json={"distinct_id": user, "event_type": "e"}).status_code == 200
        path = f"{PERSONS}/{quote(user, safe='')}/"
        assert len(admin.get(path + "export/").json()["events"]) == 1
        assert admin.delete(path).json()["deleted"]["events"] == 1
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0


@pytest.mark.parametrize("path", [f"{PERSONS}/{'x' * 201}/", f"{PERSONS}/a%00b/", f"{PERSONS}//"])
def test_invalid_distinct_ids_are_refused(admin, db, path):
    response = admin.delete(path)
    assert response.status_code == 400 and set(response.json()) == {"error", "detail", "fields"}


def test_audit_log_pages_newest_first_and_refuses_bad_parameters(admin, db):
    for user in ("a", "b", "c"):
        admin.delete(f"{PERSONS}/{user}/")
    first = admin.get(AUDIT, params={"limit": 2}).json()
    second = admin.get(first["next"]).json()
    rows = first["results"] + second["results"]
    assert len(rows) == 3 and [r["at"] for r in rows] == sorted((r["at"] for r in rows), reverse=True)
    assert {r["admin_key_name"] for r in rows} == {"tests"} and all(r["admin_key_id"] for r in rows)
    assert admin.get(AUDIT, params={"action": "drop"}).status_code == 400
    assert admin.get(AUDIT, params={"nope": "1"}).status_code == 400
    assert admin.get(AUDIT, params={"cursor": "garbage"}).status_code == 400


# --- client IP ----------------------------------------------------------------------------


def _dead_letter_addr(client: httpx.Client, db) -> str | None:
    db.execute("TRUNCATE rejected_events")
    assert client.post(f"{API}/capture/", content=b"{broken", headers=JSON).status_code == 400
    return db.execute("SELECT remote_addr FROM rejected_events").fetchone()[0]


def test_client_ip_is_not_stored_by_default(api, db):
    assert _dead_letter_addr(api, db) is None


@pytest.mark.parametrize(
    "prefixes, expected", [((24, 48), "127.0.0.0"), ((8, 48), "127.0.0.0"), ((32, 128), "127.0.0.1")]
)
def test_client_ip_is_stored_truncated_when_configured(database_url, db, prefixes, expected):
    settings = settings_for(database_url, store_client_ip=True, client_ip_prefixes=prefixes)
    with RunningServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert _dead_letter_addr(client, db) == expected


def test_events_never_store_the_client_ip(api, db):
    event_uuid = str(uuid.uuid4())
    assert (
        api.post(f"{API}/capture/", json={"distinct_id": "u", "event_type": "e", "uuid": event_uuid}).status_code == 200
    )
    (row,) = db.execute("SELECT to_jsonb(events)::text FROM events").fetchall()
    assert "127.0.0.1" not in row[0]
