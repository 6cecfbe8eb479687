"""Public feature-flag endpoints over real HTTP: list, one flag, for_user, ETags, cache refresh."""

from __future__ import annotations

from tests.conftest import wait_until
from tests.e2e.test_capture_api import assert_error

PUBLIC = "/api/v1/analytics/public/feature-flags"
ADMIN = "/api/v1/analytics/admin/feature-flags"


def _create(admin, **fields):
    response = admin.post(f"{ADMIN}/", json={"rollout_percentage": 100, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_list_shows_active_flags_only(api, admin):
    on = _create(admin, key="on")
    _create(admin, key="off", active=False)
    wait_until(lambda: len(api.get(f"{PUBLIC}/").json()["results"]) == 1)
    assert [f["key"] for f in api.get(f"{PUBLIC}/").json()["results"]] == ["on"]
    assert api.get(f"{PUBLIC}/{on['id']}/").json()["key"] == "on"
    assert_error(api.get(f"{PUBLIC}/999999/"), 404, "not_found")
    assert_error(api.get(f"{PUBLIC}/abc/"), 404, "not_found")


def test_for_user_lists_every_flag_as_the_seed_client_reads_it(api, admin):
    _create(admin, key="new_checkout_flow")
    _create(admin, key="dark_mode", active=False)
    _create(
        admin,
        key="paywall",
        variants=[{"key": "control", "rollout_percentage": 0}, {"key": "annual", "rollout_percentage": 100, "payload": {"price": 49}}],
    )
    flags = wait_until(lambda: (r := api.get(f"{PUBLIC}/for_user/?distinct_id=user-1").json()) and len(r) == 3 and r)
    assert flags.get("new_checkout_flow", {}).get("active", False) is True
    assert flags["dark_mode"] == {"active": False, "variant": None, "payload": None}
    assert flags["paywall"] == {"active": True, "variant": "annual", "payload": {"price": 49}}


def test_for_user_post_targets_on_properties_and_app_fields(api, admin):
    _create(
        admin,
        key="ios_pro",
        conditions=[{"properties": [{"key": "plan", "operator": "exact", "value": "pro"}, {"key": "os_name", "operator": "exact", "value": "iOS"}]}],
    )
    wait_until(lambda: "ios_pro" in api.get(f"{PUBLIC}/for_user/?distinct_id=u").json())
    body = {"distinct_id": "u", "os_name": "iOS", "app_version": "2.0.0", "properties": {"plan": "pro"}}
    assert api.post(f"{PUBLIC}/for_user/", json=body).json()["ios_pro"]["active"] is True
    assert api.post(f"{PUBLIC}/for_user/", json={**body, "os_name": "Android"}).json()["ios_pro"]["active"] is False
    assert api.get(f"{PUBLIC}/for_user/?distinct_id=u&os_name=iOS&properties=%7B%22plan%22%3A%22pro%22%7D").json()["ios_pro"]["active"] is True


def test_for_user_without_distinct_id_is_400(api, admin):
    assert_error(api.get(f"{PUBLIC}/for_user/"), 400, "validation_error", "distinct_id")
    assert_error(api.post(f"{PUBLIC}/for_user/", json={"properties": {}}), 400, "validation_error", "distinct_id")
    assert_error(api.post(f"{PUBLIC}/for_user/", json={"distinct_id": "u", "properties": []}), 400, "validation_error", "properties")


def test_etag_answers_304_until_a_flag_changes(api, admin):
    flag = _create(admin, key="etag_flag")
    wait_until(lambda: api.get(f"{PUBLIC}/").json()["results"])
    for path in (f"{PUBLIC}/", f"{PUBLIC}/for_user/?distinct_id=u"):
        first = api.get(path)
        etag = first.headers["etag"]
        assert api.get(path, headers={"If-None-Match": etag}).status_code == 304
    list_etag = api.get(f"{PUBLIC}/").headers["etag"]
    admin.patch(f"{ADMIN}/{flag['id']}/", json={"rollout_percentage": 0})
    changed = wait_until(lambda: (r := api.get(f"{PUBLIC}/", headers={"If-None-Match": list_etag})).status_code == 200 and r)
    assert changed.headers["etag"] != list_etag


def test_cache_sees_a_change_made_elsewhere_within_a_second(api, admin, database_url):
    """A change written by another worker (here: straight to the database) reaches this worker's cache."""
    import psycopg

    flag = _create(admin, key="remote_change")
    wait_until(lambda: api.get(f"{PUBLIC}/for_user/?distinct_id=u").json().get("remote_change", {}).get("active"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE feature_flags SET active = false, version = version + 1 WHERE id = %s", (flag["id"],))
    wait_until(lambda: api.get(f"{PUBLIC}/for_user/?distinct_id=u").json()["remote_change"]["active"] is False, timeout=1.5)
