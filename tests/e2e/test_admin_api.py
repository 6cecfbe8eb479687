"""The admin API over real HTTP: authentication, events, sessions, feature-flag management."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.e2e.test_capture_api import assert_error

ADMIN = "/api/v1/analytics/admin"
ADMIN_ROUTES = [
    ("GET", f"{ADMIN}/events/"),
    ("GET", f"{ADMIN}/sessions/"),
    ("GET", f"{ADMIN}/feature-flags/"),
    ("POST", f"{ADMIN}/feature-flags/"),
    ("GET", f"{ADMIN}/feature-flags/1/"),
    ("PUT", f"{ADMIN}/feature-flags/1/"),
    ("PATCH", f"{ADMIN}/feature-flags/1/"),
    ("DELETE", f"{ADMIN}/feature-flags/1/"),
]


def test_a_flag_holding_a_number_beyond_64_bits_can_be_patched_and_evaluated(admin, api):
    """jsonb keeps 1e30 as the integer 1000...0, which came back as a Python int orjson cannot write: PATCH
    and every flag endpoint answered 500 (found by the schemathesis run)."""
    body = {"key": "big_number", "rollout_percentage": 100, "payload": {"limit": 1e30, "small": -(2**63)}}
    flag_id = admin.post(f"{ADMIN}/feature-flags/", json=body).json()["id"]
    patched = admin.patch(f"{ADMIN}/feature-flags/{flag_id}/", json={"description": "patched"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["payload"] == {"limit": 1e30, "small": -(2**63)}
    wait_until(lambda: api.post("/flags/", json={"distinct_id": "u1"}).json().get("flags", {}).get("big_number"))
    for answer in (
        api.post("/flags/", json={"distinct_id": "u1"}),
        api.get("/api/v1/analytics/public/feature-flags/for_user/", params={"distinct_id": "u1"}),
    ):
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "field, value",
    [
        ("payload", {"note": "a\u0000b"}),
        ("payload", {"a\u0000": 1}),  # a key holding it
        ("payload", [[[["deep\u0000"]]]]),
        ("name", "with\u0000nul"),
        ("description", "\u0000"),
        ("variants", [{"key": "a", "rollout_percentage": 100, "payload": "\u0000"}]),
    ],
)
def test_a_flag_holding_nul_is_refused_with_the_field(admin, field, value):
    """Postgres text and jsonb cannot store NUL: a flag holding one answered 500 (found by the schemathesis run)."""
    created = admin.post(f"{ADMIN}/feature-flags/", json={"key": "with_nul", field: value})
    assert_error(created, 400, "validation_error")
    assert "NUL" in created.json()["fields"][field]
    flag_id = admin.post(f"{ADMIN}/feature-flags/", json={"key": "patched_with_nul"}).json()["id"]
    assert_error(admin.patch(f"{ADMIN}/feature-flags/{flag_id}/", json={field: value}), 400, "validation_error")
    admin.delete(f"{ADMIN}/feature-flags/{flag_id}/")


@pytest.mark.parametrize("method, path", ADMIN_ROUTES)
def test_admin_route_refuses_requests_without_a_valid_key(api, admin_key, method, path):
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer etadm_wrong"},
    ):
        response = api.request(method, path, headers=headers, json={})
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_refused_within_a_second(api, admin_key, database_url):
    from ingest_api.admin.key_store import list_admin_keys, revoke_admin_key

    headers = {"Authorization": f"Bearer {admin_key}"}
    assert api.get(f"{ADMIN}/events/", headers=headers).status_code == 200
    ((key_id, *_),) = list_admin_keys(database_url)
    assert revoke_admin_key(database_url, key_id)
    wait_until(lambda: api.get(f"{ADMIN}/events/", headers=headers).status_code == 401, timeout=1.5)


def test_admin_key_commands_create_list_and_revoke(database_url, api):
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    eventtrack = str(Path(sys.executable).parent / "eventtrack")
    created = subprocess.run(
        [eventtrack, "create-admin-key", "--name", "ci"], env=env, capture_output=True, text=True, check=True
    )
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("etadm_")
    listed = subprocess.run([eventtrack, "list-admin-keys"], env=env, capture_output=True, text=True, check=True).stdout
    assert "ci" in listed and key not in listed and "active" in listed
    wait_until(lambda: api.get(f"{ADMIN}/events/", headers={"Authorization": f"Bearer {key}"}).status_code == 200)
    key_id = listed.split()[0]
    subprocess.run([eventtrack, "revoke-admin-key", key_id], env=env, check=True, capture_output=True)
    assert "revoked" in subprocess.run([eventtrack, "list-admin-keys"], env=env, capture_output=True, text=True).stdout


# --- events -------------------------------------------------------------------


def _capture_many(api, n, **fields):
    base = datetime.now(UTC) - timedelta(hours=1)
    events = [
        {
            "distinct_id": f"u{i % 3}",
            "event": f"e{i % 2}",
            "timestamp": (base + timedelta(seconds=i)).isoformat(),
            **fields,
        }
        for i in range(n)
    ]
    assert api.post("/api/v1/analytics/batch/", json={"events": events}).json()["accepted"] == n
    return events


def test_events_are_listed_newest_first_and_paged_without_gaps(api, admin):
    _capture_many(api, 25)
    seen, url = [], f"{ADMIN}/events/?limit=10"
    pages = 0
    while url:
        body = admin.get(url).json()
        seen += body["results"]
        url = body["next"]
        pages += 1
    assert pages == 3 and len(seen) == 25 and len({e["uuid"] for e in seen}) == 25
    stamps = [e["timestamp"] for e in seen]
    assert stamps == sorted(stamps, reverse=True)


def test_events_previous_link_returns_the_page_before(api, admin):
    _capture_many(api, 12)
    first = admin.get(f"{ADMIN}/events/?limit=5").json()
    assert first["previous"] is None
    second = admin.get(first["next"]).json()
    back = admin.get(second["previous"]).json()
    assert [e["uuid"] for e in back["results"]] == [e["uuid"] for e in first["results"]]


def test_events_filters(api, admin):
    _capture_many(api, 12, session_id="s-1")
    assert {e["event_type"] for e in admin.get(f"{ADMIN}/events/?event_type=e1").json()["results"]} == {"e1"}
    assert len(admin.get(f"{ADMIN}/events/?distinct_id=u0").json()["results"]) == 4
    assert len(admin.get(f"{ADMIN}/events/?session_id=s-1").json()["results"]) == 12
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(hours=1, seconds=-2)).isoformat(),
        "end": (now - timedelta(hours=1, seconds=-5)).isoformat(),
    }
    assert len(admin.get(f"{ADMIN}/events/", params=window).json()["results"]) in (3, 4)


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("start=yesterday", "start"),
        ("colour=red", "colour"),
    ],
)
def test_events_bad_parameters_are_400(admin, query, field):
    assert_error(admin.get(f"{ADMIN}/events/?{query}"), 400, "invalid_parameter", field)


# --- sessions -------------------------------------------------------------------


def test_sessions_filter_by_status_and_user(api, admin):
    ids = [
        api.post("/api/v1/analytics/session/start/", json={"distinct_id": f"u{i % 2}"}).json()["session_id"]
        for i in range(4)
    ]
    api.put(f"/api/v1/analytics/session/{ids[0]}/end/", json={})
    assert [s["session_id"] for s in admin.get(f"{ADMIN}/sessions/?status=ended").json()["results"]] == [ids[0]]
    assert len(admin.get(f"{ADMIN}/sessions/?status=active").json()["results"]) == 3
    assert {s["distinct_id"] for s in admin.get(f"{ADMIN}/sessions/?distinct_id=u1").json()["results"]} == {"u1"}
    ended = admin.get(f"{ADMIN}/sessions/?status=ended").json()["results"][0]
    assert ended["status"] == "ended" and ended["duration_seconds"] >= 0
    assert_error(admin.get(f"{ADMIN}/sessions/?status=open"), 400, "invalid_parameter", "status")


# --- feature flags ----------------------------------------------------------------

FLAG = {
    "key": "new_checkout_flow",
    "name": "New checkout",
    "rollout_percentage": 50,
    "variants": [
        {"key": "control", "rollout_percentage": 50},
        {"key": "test", "rollout_percentage": 50, "payload": {"color": "green"}},
    ],
}


def test_flag_crud_bumps_version(admin):
    created = admin.post(f"{ADMIN}/feature-flags/", json=FLAG)
    assert created.status_code == 201, created.text
    flag = created.json()
    assert flag["version"] == 1 and flag["key"] == "new_checkout_flow" and flag["active"] is True
    flag_id = flag["id"]
    assert admin.get(f"{ADMIN}/feature-flags/{flag_id}/").json() == flag
    patched = admin.patch(f"{ADMIN}/feature-flags/{flag_id}/", json={"rollout_percentage": 75.5}).json()
    assert patched["version"] == 2 and patched["rollout_percentage"] == 75.5 and patched["variants"] == flag["variants"]
    replaced = admin.put(
        f"{ADMIN}/feature-flags/{flag_id}/", json={"key": "new_checkout_flow", "rollout_percentage": 10}
    ).json()
    assert replaced["version"] == 3 and replaced["variants"] == []
    listing = admin.get(f"{ADMIN}/feature-flags/").json()
    assert [f["id"] for f in listing["results"]] == [flag_id] and listing["next"] is None
    assert admin.delete(f"{ADMIN}/feature-flags/{flag_id}/").status_code == 204
    assert_error(admin.get(f"{ADMIN}/feature-flags/{flag_id}/"), 404, "not_found")
    assert_error(admin.delete(f"{ADMIN}/feature-flags/{flag_id}/"), 404, "not_found")


@pytest.mark.parametrize(
    "body, field",
    [
        ({**FLAG, "key": "Not A Slug!"}, "key"),
        (
            {**FLAG, "variants": [{"key": "a", "rollout_percentage": 60}, {"key": "b", "rollout_percentage": 30}]},
            "variants",
        ),
        ({**FLAG, "rollout_percentage": 101}, "rollout_percentage"),
        (
            {**FLAG, "conditions": [{"properties": [{"key": "plan", "operator": "sounds_like", "value": "pro"}]}]},
            "conditions[0].properties[0].operator",
        ),
    ],
)
def test_invalid_flag_definitions_are_400_with_field_errors(admin, body, field):
    assert_error(admin.post(f"{ADMIN}/feature-flags/", json=body), 400, "validation_error", field)


def test_duplicate_flag_key_is_400(admin):
    assert admin.post(f"{ADMIN}/feature-flags/", json=FLAG).status_code == 201
    assert_error(admin.post(f"{ADMIN}/feature-flags/", json=FLAG), 400, "validation_error", "key")


def test_events_with_integers_beyond_64_bits_in_properties_are_listed(api, admin, db):
    db.execute(
        "INSERT INTO events (uuid, event_type, distinct_id, properties, timestamp, received_at)"
        " VALUES (gen_random_uuid(), 'x', 'u', '{\"n\": 123456789012345678901234567890}', now(), now())"
    )
    response = admin.get(f"{ADMIN}/events/")
    assert response.status_code == 200
    assert response.json()["results"][0]["properties"]["n"] == 123456789012345678901234567890


# --- HEAD and cursors ---------------------------------------------------------------


def test_head_mirrors_get_and_never_writes(admin, db):
    flag = admin.post(f"{ADMIN}/feature-flags/", json=FLAG).json()
    replacement = {"key": "replaced_by_head", "rollout_percentage": 1}
    item = admin.request("HEAD", f"{ADMIN}/feature-flags/{flag['id']}/", json=replacement)
    assert item.status_code == 200 and item.content == b""
    collection = admin.request(
        "HEAD", f"{ADMIN}/feature-flags/", json={"key": "created_by_head", "rollout_percentage": 1}
    )
    assert collection.status_code == 200 and collection.content == b""
    assert admin.get(f"{ADMIN}/feature-flags/{flag['id']}/").json() == flag
    assert [f["key"] for f in admin.get(f"{ADMIN}/feature-flags/").json()["results"]] == [flag["key"]]
    funnel = {"name": "head", "steps": ["a", "b"]}
    assert admin.request("HEAD", f"{ADMIN}/funnels/saved/", json=funnel).status_code == 200
    assert funnel["name"] not in [f["name"] for f in admin.get(f"{ADMIN}/funnels/saved/").json()["results"]]
    # No GET: no HEAD.
    assert admin.request("HEAD", f"{ADMIN}/persons/u/").status_code == 405


CRAFTED_CURSOR = "eyJrIjpbdHJ1ZV0sImYiOnRydWV9"  # {"k":[true],"f":true}: was `bigint > boolean`, a 500


def _cursor(value) -> str:
    import base64

    import orjson

    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    "path",
    [
        f"{ADMIN}/feature-flags/",
        f"{ADMIN}/experiments/",
        f"{ADMIN}/events/",
        f"{ADMIN}/sessions/",
        f"{ADMIN}/audit-log/",
        f"{ADMIN}/event-aggregates/",
        f"{ADMIN}/event-aggregates/?breakdown=properties.plan",
    ],
)
def test_every_cursor_listing_refuses_crafted_cursors_with_400_invalid_cursor(admin, path):
    crafted = [
        CRAFTED_CURSOR,
        _cursor({"k": [1.5], "f": True}),
        _cursor({"k": ["2026-01-01T00:00:00Z", "b0b0b0b0-0000-4000-8000-000000000000"], "f": "forward"}),
        _cursor({"k": [True, "x\u0000", "", ""], "f": True}),
        _cursor({"k": ["2026-01-01T00:00:00Z", 1, 2, 3, 4], "f": True}),
        "not-base64!",
    ]
    for cursor in crafted:
        answer = admin.get(path, params={"cursor": cursor})
        assert_error(answer, 400, "invalid_cursor", "cursor")
    # The same keep-alive connection still serves (a 500 used to reset it).
    assert admin.get(path).status_code == 200


def test_feature_flags_page_forward_and_back_by_id(admin, db):
    keys = [
        admin.post(f"{ADMIN}/feature-flags/", json={"key": f"page-{i}", "rollout_percentage": 1}).json()["key"]
        for i in range(3)
    ]
    first = admin.get(f"{ADMIN}/feature-flags/?limit=2").json()
    second = admin.get(first["next"]).json()
    assert [f["key"] for f in first["results"] + second["results"]] == keys and second["next"] is None
    assert [f["key"] for f in admin.get(second["previous"]).json()["results"]] == keys[:2]
