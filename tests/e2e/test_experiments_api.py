"""Experiments over real HTTP: the admin CRUD with its field errors, the results route, and
`record_exposure=true` on the flag endpoints writing `$feature_flag_called` events."""

from __future__ import annotations

import pytest

from ingest_api.flags.exposure import exposure_uuid
from tests.conftest import wait_until
from tests.e2e.test_capture_api import assert_error
from tests.e2e.test_public_flags_api import PUBLIC, _create

BASE = "/api/v1/analytics/admin/experiments"
WINDOW = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-02-01T00:00:00+01:00"}


@pytest.fixture
def clean(db):
    db.execute("DELETE FROM experiments")
    yield
    db.execute("DELETE FROM experiments")


@pytest.fixture
def checkout_flag(admin):
    return _create(
        admin,
        key="checkout",
        variants=[{"key": "control", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}],
    )


def _experiment(admin, **fields):
    response = admin.post(
        f"{BASE}/", json={"name": "Checkout", "flag_key": "checkout", "goal_event": "purchase", **WINDOW, **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_experiment_crud_round_trip(admin, clean, checkout_flag):
    created = _experiment(admin, secondary_events=["add_to_cart"], description="Does the new checkout sell more?")
    assert created["control_variant"] == "control"
    assert created["variants"] == [
        {"key": "control", "expected_percentage": 50.0},
        {"key": "b", "expected_percentage": 50.0},
    ]
    assert created["end_at"] == "2026-01-31T23:00:00+00:00"
    url = f"{BASE}/{created['id']}/"
    assert admin.get(url).json() == created
    assert [e["id"] for e in admin.get(f"{BASE}/").json()["results"]] == [created["id"]]
    assert admin.get(f"{BASE}/?flag_key=other").json()["results"] == []

    patched = admin.patch(url, json={"goal_event": "subscribe", "control_variant": "b"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["goal_event"], patched.json()["control_variant"], patched.json()["name"]) == (
        "subscribe",
        "b",
        "Checkout",
    )
    assert patched.json()["updated_at"] >= created["updated_at"]

    replaced = admin.put(url, json={"name": "Checkout 2", "flag_key": "checkout", "goal_event": "purchase", **WINDOW})
    assert replaced.status_code == 200
    assert (replaced.json()["control_variant"], replaced.json()["secondary_events"]) == ("control", [])

    assert admin.delete(url).status_code == 204
    assert_error(admin.get(url), 404, "not_found")
    assert_error(admin.delete(url), 404, "not_found")


def test_head_on_experiments_mirrors_get_and_never_writes(admin, clean, checkout_flag):
    created = _experiment(admin)
    url = f"{BASE}/{created['id']}/"
    replacement = {"name": "Replaced by HEAD", "flag_key": "checkout", "goal_event": "other", **WINDOW}
    assert admin.request("HEAD", url, json=replacement).status_code == 200
    assert admin.request("HEAD", f"{BASE}/", json={**replacement, "name": "Created by HEAD"}).status_code == 200
    assert admin.get(url).json() == created
    assert [e["name"] for e in admin.get(f"{BASE}/").json()["results"]] == ["Checkout"]


def test_invalid_experiments_are_400_with_every_field_named(admin, clean, checkout_flag):
    response = admin.post(
        f"{BASE}/",
        json={
            "name": "",
            "flag_key": "checkout",
            "goal_event": "purchase",
            "control_variant": "z",
            "start_at": "2026-02-01T00:00:00Z",
            "end_at": "2026-01-01T00:00:00Z",
            "secondary_events": "cart",
        },
    )
    body = assert_error(response, 400, "validation_error")
    assert set(body["fields"]) == {"name", "control_variant", "end_at", "secondary_events"}
    missing = assert_error(
        admin.post(f"{BASE}/", json={"name": "x", "flag_key": "nope", "goal_event": "g", **WINDOW}),
        400,
        "validation_error",
    )
    assert "nope" in missing["fields"]["flag_key"]
    assert_error(admin.post(f"{BASE}/", content=b"[1]"), 400, "not_an_object")
    experiment = _experiment(admin)
    assert_error(
        admin.patch(f"{BASE}/{experiment['id']}/", json={"end_at": "2025-01-01T00:00:00Z"}), 400, "validation_error"
    )
    assert_error(admin.get(f"{BASE}/abc/"), 404, "not_found")
    assert_error(admin.get(f"{BASE}/99999999999999999999/"), 404, "not_found")


def test_experiments_need_an_admin_key(api, clean):
    assert_error(api.get(f"{BASE}/"), 401, "unauthorized")
    assert_error(api.get(f"{BASE}/1/results/"), 401, "unauthorized")


def test_results_are_empty_until_the_pipeline_ran_and_404_for_an_unknown_experiment(admin, clean, checkout_flag):
    experiment = _experiment(admin)
    body = admin.get(f"{BASE}/{experiment['id']}/results/").json()
    assert body == {"experiment_id": experiment["id"], "computed_at": None, "results": []}
    assert_error(admin.get(f"{BASE}/{experiment['id'] + 1000}/results/"), 404, "not_found")


def _exposures(db):
    return db.execute(
        "SELECT uuid, distinct_id, properties->>'$feature_flag', properties->'$feature_flag_response', \"timestamp\""
        " FROM events WHERE event_type = '$feature_flag_called' ORDER BY 3"
    ).fetchall()


def test_for_user_records_one_exposure_per_flag_user_and_day(api, admin, db, clean):
    _create(
        admin,
        key="checkout",
        variants=[{"key": "control", "rollout_percentage": 0}, {"key": "b", "rollout_percentage": 100}],
    )
    _create(admin, key="dark-mode")
    _create(admin, key="retired", active=False)
    wait_until(lambda: len(api.get(f"{PUBLIC}/for_user/?distinct_id=u1").json()) == 3)
    assert _exposures(db) == []  # not asked for

    for _ in range(3):
        assert api.get(f"{PUBLIC}/for_user/?distinct_id=u1&record_exposure=true").status_code == 200
    assert api.post(f"{PUBLIC}/for_user/?record_exposure=true", json={"distinct_id": "u1"}).status_code == 200
    rows = _exposures(db)
    assert [(r[1], r[2], r[3]) for r in rows] == [("u1", "checkout", "b"), ("u1", "dark-mode", True)]
    assert all(r[0] == exposure_uuid(r[2], "u1", r[4]) for r in rows)  # the deterministic id that dedups repeats

    assert_error(api.get(f"{PUBLIC}/for_user/?distinct_id=u1&record_exposure=maybe"), 400, "invalid_parameter")


def test_an_answer_from_the_per_user_cache_still_records_the_exposures(api, admin, db, clean):
    _create(admin, key="dark-mode")
    body = {"distinct_id": "cached-user"}
    wait_until(lambda: "dark-mode" in api.post(f"{PUBLIC}/for_user/", json=body).json())  # answered and kept
    assert api.post(f"{PUBLIC}/for_user/?record_exposure=true", json=body).status_code == 200  # the same body
    assert [(r[1], r[2], r[3]) for r in _exposures(db) if r[1] == "cached-user"] == [("cached-user", "dark-mode", True)]


def test_posthog_flags_and_decide_record_exposures_of_the_evaluated_flags(api, admin, db, clean):
    _create(
        admin,
        key="checkout",
        variants=[{"key": "control", "rollout_percentage": 100}, {"key": "b", "rollout_percentage": 0}],
    )
    _create(admin, key="dark-mode", rollout_percentage=0)
    wait_until(lambda: len(api.post("/flags/?v=2", json={"distinct_id": "u2"}).json()["flags"]) == 2)
    assert _exposures(db) == []

    response = api.post(
        "/flags/?v=2&record_exposure=true", json={"distinct_id": "u2", "flag_keys_to_evaluate": ["checkout"]}
    )
    assert response.status_code == 200 and response.json()["flags"]["checkout"]["variant"] == "control"
    assert [(r[1], r[2], r[3]) for r in _exposures(db)] == [("u2", "checkout", "control")]
    assert api.post("/decide/?v=3&record_exposure=1", json={"distinct_id": "u2"}).status_code == 200
    assert [(r[1], r[2], r[3]) for r in _exposures(db)] == [("u2", "checkout", "control"), ("u2", "dark-mode", False)]
    assert_error(api.post("/flags/?record_exposure=yes", json={"distinct_id": "u2"}), 400, "invalid_parameter")
