"""Flags through the real PostHog SDK (/flags) and the real OpenFeature OFREP provider, against the running server."""

from __future__ import annotations

import gzip

import orjson
import pytest
from openfeature import api as openfeature
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from posthog import Posthog

from tests.conftest import wait_until
from tests.e2e.test_public_flags_api import ADMIN, _create

OFREP_ONE = "/ofrep/v1/evaluate/flags"
# get_feature_flag & co. are deprecated in posthog 7 in favour of evaluate_flags(); mobile SDKs still use the same /flags call.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def sdk(server, key="phc_test") -> Posthog:
    return Posthog(
        key, host=server.url, sync_mode=True, max_retries=0, feature_flags_request_max_retries=0, disable_geoip=True
    )


@pytest.fixture
def flags(api, admin):
    """A boolean flag, a targeted flag, a multivariate flag with variant payloads, a flag with a payload, a disabled flag."""
    created = {
        "new-checkout": _create(admin, key="new-checkout"),
        "beta-only": _create(
            admin, key="beta-only", conditions=[{"properties": [{"key": "plan", "operator": "exact", "value": "beta"}]}]
        ),
        "paywall": _create(
            admin,
            key="paywall",
            variants=[
                {"key": "monthly", "rollout_percentage": 0, "payload": {"price": 5}},
                {"key": "annual", "rollout_percentage": 100, "payload": {"price": 49}},
            ],
        ),
        "home-layout": _create(
            admin,
            key="home-layout",
            variants=[{"key": "grid", "rollout_percentage": 100}, {"key": "list", "rollout_percentage": 0}],
        ),
        "banner": _create(admin, key="banner", payload={"text": "Hello", "color": "#ff0"}),
        "retired": _create(admin, key="retired", active=False),
    }
    wait_until(
        lambda: len(api.post(f"{OFREP_ONE}", json={"context": {"targetingKey": "u"}}).json().get("flags", [])) == 6
    )
    return created


@pytest.fixture
def openfeature_client(server):
    openfeature.set_provider(OFREPProvider(server.url))
    yield openfeature.get_client()
    openfeature.clear_providers()


# --- PostHog SDK ---------------------------------------------------------------


def test_posthog_sdk_reads_booleans_variants_payloads_and_targeting(server, api, flags):
    client = sdk(server)
    try:
        assert client.get_feature_flag("new-checkout", "user-1", send_feature_flag_events=False) is True
        assert client.feature_enabled("new-checkout", "user-1", send_feature_flag_events=False) is True
        assert client.get_feature_flag("paywall", "user-1", send_feature_flag_events=False) == "annual"
        assert client.get_feature_flag_payload("paywall", "user-1", send_feature_flag_events=False) == {"price": 49}
        assert client.get_feature_flag_payload("banner", "user-1", send_feature_flag_events=False) == {
            "text": "Hello",
            "color": "#ff0",
        }
        assert client.get_feature_flag("beta-only", "user-1", send_feature_flag_events=False) is False
        assert (
            client.get_feature_flag(
                "beta-only", "user-1", person_properties={"plan": "beta"}, send_feature_flag_events=False
            )
            is True
        )
        assert (
            client.get_feature_flag("retired", "user-1", send_feature_flag_events=False) is None
        )  # inactive: not in the answer
        values = client.get_all_flags("user-1")
        assert values == {
            "new-checkout": True,
            "beta-only": False,
            "paywall": "annual",
            "home-layout": "grid",
            "banner": True,
        }
    finally:
        client.shutdown()


def test_flags_v2_records_and_decide_v3_maps_have_the_documented_shapes(api, flags):
    v2 = api.post("/flags/?v=2", json={"api_key": "phc_x", "distinct_id": "user-1"}).json()
    assert v2["errorsWhileComputingFlags"] is False and v2["requestId"]
    assert v2["flags"]["paywall"] == {
        "key": "paywall",
        "enabled": True,
        "variant": "annual",
        "reason": {"code": "condition_match", "condition_index": 0, "description": "Matched condition set 1"},
        "metadata": {"id": flags["paywall"]["id"], "version": 1, "payload": '{"price":49}', "description": ""},
    }
    assert v2["flags"]["beta-only"]["reason"]["code"] == "no_condition_match"
    assert v2["flags"]["beta-only"]["metadata"]["payload"] is None
    assert api.post("/decide/?v=4", json={"distinct_id": "user-1"}).json()["flags"].keys() == v2["flags"].keys()
    v3 = api.post("/decide/?v=3", json={"token": "phc_x", "distinct_id": "user-1"}).json()
    assert v3["featureFlags"] == {
        "new-checkout": True,
        "beta-only": False,
        "paywall": "annual",
        "home-layout": "grid",
        "banner": True,
    }
    assert v3["featureFlagPayloads"] == {"paywall": '{"price":49}', "banner": '{"text":"Hello","color":"#ff0"}'}
    assert v3["sessionRecording"] is False
    gz = api.post(
        "/flags",
        content=gzip.compress(orjson.dumps({"distinct_id": "user-1"})),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert gz.json()["flags"]["paywall"]["variant"] == "annual"
    missing = api.post("/flags/?v=2", json={"person_properties": {}})
    assert missing.status_code == 400 and missing.json()["error"] == "validation_error"


def test_flag_endpoints_require_the_write_key_once_one_exists(server, api, flags, write_key):
    assert api.post("/flags/?v=2", json={"distinct_id": "u"}).json()["error"] == "invalid_api_key"
    assert api.post("/flags/?v=2", json={"api_key": write_key, "distinct_id": "u"}).status_code == 200
    assert api.post(f"{OFREP_ONE}/banner", json={"context": {"targetingKey": "u"}}).status_code == 401
    ok = api.post(
        f"{OFREP_ONE}/banner", json={"context": {"targetingKey": "u"}}, headers={"Authorization": f"Bearer {write_key}"}
    )
    assert ok.status_code == 200
    client = sdk(server, key=write_key)
    try:
        assert client.get_feature_flag("new-checkout", "u", send_feature_flag_events=False) is True
    finally:
        client.shutdown()


# --- OFREP ------------------------------------------------------------------------


def test_openfeature_provider_reads_boolean_string_and_object_flags(openfeature_client, flags):
    context = EvaluationContext(targeting_key="user-1", attributes={"plan": "beta"})
    details = openfeature_client.get_boolean_details("new-checkout", False, context)
    assert (details.value, details.reason, details.variant) == (True, Reason.STATIC, "on")
    assert openfeature_client.get_boolean_value("beta-only", False, context) is True
    assert (
        openfeature_client.get_boolean_details("beta-only", False, EvaluationContext(targeting_key="user-1")).reason
        == Reason.TARGETING_MATCH
    )
    layout = openfeature_client.get_string_details("home-layout", "list", context)
    assert (layout.value, layout.variant, layout.reason) == ("grid", "grid", Reason.SPLIT)
    assert openfeature_client.get_object_value("paywall", {}, context) == {"price": 49}
    banner = openfeature_client.get_object_details("banner", {}, context)
    assert (
        banner.value == {"text": "Hello", "color": "#ff0"} and banner.flag_metadata["flagId"] == flags["banner"]["id"]
    )
    retired = openfeature_client.get_boolean_details("retired", True, context)
    assert (retired.value, retired.reason, retired.variant) == (False, Reason.DISABLED, "disabled")


def test_openfeature_provider_reports_a_missing_flag_and_a_missing_targeting_key(openfeature_client, flags):
    missing = openfeature_client.get_boolean_details("no-such-flag", False, EvaluationContext(targeting_key="user-1"))
    assert (missing.value, missing.error_code) == (False, ErrorCode.FLAG_NOT_FOUND)
    no_key = openfeature_client.get_boolean_details("new-checkout", False, EvaluationContext())
    assert (no_key.value, no_key.error_code) == (False, ErrorCode.TARGETING_KEY_MISSING)


def test_ofrep_error_shapes_and_bulk_etag(api, flags):
    assert api.post(f"{OFREP_ONE}/nope", json={"context": {"targetingKey": "u"}}).json() == {
        "key": "nope",
        "errorCode": "FLAG_NOT_FOUND",
        "errorDetails": "No flag has the key 'nope'.",
    }
    for body, code in [
        (b"{bad", "PARSE_ERROR"),
        (b'{"context": []}', "INVALID_CONTEXT"),
        (b'{"context": {}}', "TARGETING_KEY_MISSING"),
    ]:
        response = api.post(f"{OFREP_ONE}/banner", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.json()["errorCode"] == code
        bulk = api.post(OFREP_ONE, content=body, headers={"content-type": "application/json"})
        assert bulk.status_code == 400 and bulk.json()["errorCode"] == code
    first = api.post(OFREP_ONE, json={"context": {"targetingKey": "u"}})
    assert first.status_code == 200 and {f["key"] for f in first.json()["flags"]} == set(flags)
    assert all("variant" in f and "reason" in f for f in first.json()["flags"])
    again = api.post(
        OFREP_ONE, json={"context": {"targetingKey": "u"}}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


def test_a_flag_changed_through_the_admin_api_is_seen_by_the_posthog_sdk_and_the_ofrep_provider(
    server, admin, openfeature_client, flags
):
    client = sdk(server)
    context = EvaluationContext(targeting_key="user-1")
    try:
        assert client.get_feature_flag("new-checkout", "user-1", send_feature_flag_events=False) is True
        assert openfeature_client.get_boolean_value("new-checkout", False, context) is True
        response = admin.patch(f"{ADMIN}/{flags['new-checkout']['id']}/", json={"rollout_percentage": 0})
        assert response.status_code == 200, response.text
        wait_until(lambda: client.get_feature_flag("new-checkout", "user-1", send_feature_flag_events=False) is False)
        assert openfeature_client.get_boolean_value("new-checkout", True, context) is False
        admin.patch(f"{ADMIN}/{flags['new-checkout']['id']}/", json={"active": False})
        wait_until(
            lambda: openfeature_client.get_boolean_details("new-checkout", True, context).reason == Reason.DISABLED
        )
        assert client.get_feature_flag("new-checkout", "user-1", send_feature_flag_events=False) is None
    finally:
        client.shutdown()
