"""Public feature-flag endpoints over real HTTP: list, one flag, for_user, ETags, cache refresh."""

from __future__ import annotations

import time

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


def test_public_list_and_flag_hide_the_targeting(api, admin):
    """Conditions can name people (e-mail addresses); they, rollouts and payloads stay behind the admin API."""
    flag = _create(
        admin,
        key="vip",
        name="VIP checkout",
        description="for jane",
        conditions=[
            {
                "properties": [{"key": "email", "operator": "in", "value": ["jane@example.com"]}],
                "rollout_percentage": 40,
            }
        ],
        variants=[
            {"key": "control", "rollout_percentage": 50},
            {"key": "one_page", "rollout_percentage": 50, "payload": {"secret": 1}},
        ],
        payload={"secret": 2},
    )
    public = {
        "id": flag["id"],
        "key": "vip",
        "name": "VIP checkout",
        "active": True,
        "variant_keys": ["control", "one_page"],
    }
    assert wait_until(lambda: api.get(f"{PUBLIC}/").json()["results"]) == [public]
    assert api.get(f"{PUBLIC}/{flag['id']}/").json() == public
    assert "jane@example.com" in admin.get(f"{ADMIN}/{flag['id']}/").text  # the admin API still has it all


def test_for_user_lists_every_flag_as_the_seed_client_reads_it(api, admin):
    _create(admin, key="new_checkout_flow")
    _create(admin, key="dark_mode", active=False)
    _create(
        admin,
        key="paywall",
        variants=[
            {"key": "control", "rollout_percentage": 0},
            {"key": "annual", "rollout_percentage": 100, "payload": {"price": 49}},
        ],
    )
    flags = wait_until(lambda: (r := api.get(f"{PUBLIC}/for_user/?distinct_id=user-1").json()) and len(r) == 3 and r)
    assert flags.get("new_checkout_flow", {}).get("active", False) is True
    assert flags["dark_mode"] == {"active": False, "variant": None, "payload": None}
    assert flags["paywall"] == {"active": True, "variant": "annual", "payload": {"price": 49}}


def test_for_user_post_targets_on_properties_and_app_fields(api, admin):
    _create(
        admin,
        key="ios_pro",
        conditions=[
            {
                "properties": [
                    {"key": "plan", "operator": "exact", "value": "pro"},
                    {"key": "os_name", "operator": "exact", "value": "iOS"},
                ]
            }
        ],
    )
    wait_until(lambda: "ios_pro" in api.get(f"{PUBLIC}/for_user/?distinct_id=u").json())
    body = {"distinct_id": "u", "os_name": "iOS", "app_version": "2.0.0", "properties": {"plan": "pro"}}
    assert api.post(f"{PUBLIC}/for_user/", json=body).json()["ios_pro"]["active"] is True
    assert api.post(f"{PUBLIC}/for_user/", json={**body, "os_name": "Android"}).json()["ios_pro"]["active"] is False
    assert (
        api.get(f"{PUBLIC}/for_user/?distinct_id=u&os_name=iOS&properties=%7B%22plan%22%3A%22pro%22%7D").json()[
            "ios_pro"
        ]["active"]
        is True
    )


def test_for_user_without_distinct_id_is_400(api, admin):
    assert_error(api.get(f"{PUBLIC}/for_user/"), 400, "validation_error", "distinct_id")
    assert_error(api.post(f"{PUBLIC}/for_user/", json={"properties": {}}), 400, "validation_error", "distinct_id")
    assert_error(
        api.post(f"{PUBLIC}/for_user/", json={"distinct_id": "u", "properties": []}),
        400,
        "validation_error",
        "properties",
    )


def test_etag_answers_304_until_a_flag_changes(api, admin):
    flag = _create(admin, key="etag_flag")
    wait_until(lambda: api.get(f"{PUBLIC}/").json()["results"])
    for path in (f"{PUBLIC}/", f"{PUBLIC}/for_user/?distinct_id=u"):
        first = api.get(path)
        etag = first.headers["etag"]
        assert api.get(path, headers={"If-None-Match": etag}).status_code == 304
    list_etag = api.get(f"{PUBLIC}/").headers["etag"]
    user_etag = api.get(f"{PUBLIC}/for_user/?distinct_id=u").headers["etag"]
    admin.patch(f"{ADMIN}/{flag['id']}/", json={"rollout_percentage": 0})
    wait_until(
        lambda: api.get(f"{PUBLIC}/for_user/?distinct_id=u", headers={"If-None-Match": user_etag}).status_code == 200
    )
    assert api.get(f"{PUBLIC}/", headers={"If-None-Match": list_etag}).status_code == 304  # the list shows no rollout
    admin.patch(f"{ADMIN}/{flag['id']}/", json={"name": "Renamed"})
    changed = wait_until(
        lambda: (r := api.get(f"{PUBLIC}/", headers={"If-None-Match": list_etag})).status_code == 200 and r
    )
    assert changed.headers["etag"] != list_etag and changed.json()["results"][0]["name"] == "Renamed"


def test_cache_sees_a_change_made_elsewhere_within_a_second(api, admin, database_url):
    """A change written by another worker (here: straight to the database) reaches this worker's cache."""
    import psycopg

    flag = _create(admin, key="remote_change")
    wait_until(lambda: api.get(f"{PUBLIC}/for_user/?distinct_id=u").json().get("remote_change", {}).get("active"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE feature_flags SET active = false, version = version + 1 WHERE id = %s", (flag["id"],))
    wait_until(
        lambda: api.get(f"{PUBLIC}/for_user/?distinct_id=u").json()["remote_change"]["active"] is False, timeout=1.5
    )


def test_a_backtracking_regex_answers_at_once_on_a_long_property(api, admin):
    """On Python's `re` this pattern needs ~4x longer for every 2 more characters of a near-miss (3.4 s at 27), so
    10 KiB would never finish and would hold the worker; on RE2 (linear time) every flag endpoint answers at once."""
    pattern = r"^([a-z0-9]+\.?)+@example\.com$"
    _create(
        admin, key="by_email", conditions=[{"properties": [{"key": "email", "operator": "regex", "value": pattern}]}]
    )
    wait_until(lambda: "by_email" in api.get(f"{PUBLIC}/for_user/?distinct_id=u1").json())
    near_miss = "a" * 10240 + "!"
    started = time.monotonic()
    assert (
        api.post(f"{PUBLIC}/for_user/", json={"distinct_id": "u1", "properties": {"email": near_miss}}).json()[
            "by_email"
        ]["active"]
        is False
    )
    assert (
        api.post("/flags/?v=2", json={"distinct_id": "u1", "person_properties": {"email": near_miss}}).json()["flags"][
            "by_email"
        ]["enabled"]
        is False
    )
    ofrep = api.post("/ofrep/v1/evaluate/flags/by_email", json={"context": {"targetingKey": "u1", "email": near_miss}})
    assert ofrep.json()["value"] is False
    assert time.monotonic() - started < 2  # generous: each answer takes milliseconds
    match = api.post(
        f"{PUBLIC}/for_user/", json={"distinct_id": "u1", "properties": {"email": "first.last@example.com"}}
    )
    assert match.json()["by_email"]["active"] is True
    # A lone surrogate gets past orjson through the stdlib parser; RE2 reads UTF-8, which cannot encode it.
    surrogate = api.post(
        f"{PUBLIC}/for_user/", content=b'{"distinct_id": "u1", "properties": {"email": "\\ud800@example.com"}}'
    )
    assert surrogate.status_code == 200 and surrogate.json()["by_email"]["active"] is False


def test_patterns_re2_refuses_are_a_400_when_the_flag_is_saved(admin):
    filters = [
        {"key": "a", "operator": "regex", "value": r"(a)\1"},
        {"key": "b", "operator": "not_regex", "value": "(?=x)"},
    ]
    response = admin.post(f"{ADMIN}/", json={"key": "backrefs", "conditions": [{"properties": filters}]})
    assert_error(response, 400, "validation_error", "conditions[0].properties[0].value")
    assert response.json()["fields"]["conditions[0].properties[1].value"].startswith("invalid regular expression: ")
    # A lone surrogate gets past orjson through the stdlib parser; RE2 reads UTF-8: refused, not a 500.
    body = (
        b'{"key": "surrogate", "conditions": [{"properties": [{"key": "a", "operator": "regex", "value": "\\ud800"}]}]}'
    )
    assert_error(admin.post(f"{ADMIN}/", content=body), 400, "validation_error", "conditions[0].properties[0].value")
