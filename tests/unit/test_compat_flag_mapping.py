"""Native flag results → PostHog flag answers and OFREP evaluations (pure)."""

from __future__ import annotations

import pytest

from ingest_api.config_cache import CachedFlag
from ingest_api.ofrep.evaluate import OfrepError, evaluate_flag, read_context
from ingest_api.posthog.flags import evaluate_all, flags_response, wants_detailed


def flag(id=1, **row) -> CachedFlag:
    data = {
        "id": id,
        "version": 2,
        "description": "",
        "active": True,
        "rollout_percentage": 100,
        "variants": [],
        "conditions": [],
        "payload": None,
        **row,
    }
    return CachedFlag.of(data)


BOOL = flag(1, key="bool")
HALF = flag(2, key="half", rollout_percentage=50)
TARGETED = flag(3, key="targeted", conditions=[{"properties": [{"key": "plan", "operator": "exact", "value": "pro"}]}])
MULTI = flag(4, key="multi", variants=[{"key": "a", "rollout_percentage": 100}, {"key": "b", "rollout_percentage": 0}])
FORCED = flag(
    5,
    key="forced",
    variants=[{"key": "a", "rollout_percentage": 100}, {"key": "b", "rollout_percentage": 0}],
    conditions=[{"properties": [], "variant": "b"}],
)
PAYLOAD = flag(6, key="payload", payload={"x": [1, 2]})
OFF = flag(7, key="off", active=False)


@pytest.mark.parametrize(
    "kind, version, detailed",
    [
        ("flags", None, True),
        ("flags", "2", True),
        ("flags", "4", True),
        ("flags", "1", False),
        ("decide", "3", False),
        ("decide", None, False),
        ("decide", "4", True),
        ("decide", "x", False),
    ],
)
def test_response_shape_follows_the_endpoint_and_version(kind, version, detailed):
    assert wants_detailed(kind, version) is detailed


def test_posthog_answers_leave_out_inactive_flags_and_encode_payloads_as_json_strings():
    results = evaluate_all([BOOL, TARGETED, PAYLOAD, OFF, MULTI], "user", {}, None)
    detailed = flags_response(results, True)["flags"]
    assert set(detailed) == {"bool", "targeted", "payload", "multi"}
    assert detailed["payload"]["metadata"]["payload"] == '{"x":[1,2]}'
    assert detailed["targeted"]["enabled"] is False and detailed["targeted"]["reason"]["code"] == "no_condition_match"
    assert detailed["bool"]["reason"] == {
        "code": "condition_match",
        "condition_index": 0,
        "description": "Matched condition set 1",
    }
    legacy = flags_response(results, False)
    assert legacy["featureFlags"] == {"bool": True, "targeted": False, "payload": True, "multi": "a"}
    assert legacy["featureFlagPayloads"] == {"payload": '{"x":[1,2]}'}
    assert [k for k, _ in [(f.data["key"], r) for f, r in evaluate_all([BOOL, PAYLOAD], "u", {}, {"payload"})]] == [
        "payload"
    ]


def test_ofrep_values_variants_and_reasons():
    assert evaluate_flag(BOOL, "u", {}) == {
        "key": "bool",
        "reason": "STATIC",
        "value": True,
        "variant": "on",
        "metadata": {"flagId": 1, "version": 2},
    }
    assert evaluate_flag(TARGETED, "u", {"plan": "pro"})["reason"] == "TARGETING_MATCH"
    missed = evaluate_flag(TARGETED, "u", {})
    assert (missed["value"], missed["variant"], missed["reason"]) == (
        False,
        "off",
        "TARGETING_MATCH",
    )  # OFREP has no DEFAULT
    multi = evaluate_flag(MULTI, "u", {})
    assert (multi["value"], multi["variant"], multi["reason"]) == ("a", "a", "SPLIT")
    forced = evaluate_flag(FORCED, "u", {})
    assert (forced["value"], forced["reason"], forced["metadata"]["conditionIndex"]) == ("b", "TARGETING_MATCH", 0)
    assert evaluate_flag(PAYLOAD, "u", {})["value"] == {"x": [1, 2]}
    disabled = evaluate_flag(OFF, None, {})
    assert (disabled["value"], disabled["variant"], disabled["reason"]) == (False, "disabled", "DISABLED")
    in_or_out = {evaluate_flag(HALF, f"user-{i}", {})["value"] for i in range(50)}
    assert in_or_out == {True, False} and evaluate_flag(HALF, "user-1", {})["reason"] == "SPLIT"


REASONS = {"STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"}  # open-feature/protocol service/openapi.yaml


@pytest.mark.parametrize(
    "row, on, off",
    [
        ({}, True, False),
        ({"variants": [{"key": "a", "rollout_percentage": 100}]}, "a", ""),
        ({"payload": {"x": 1}}, {"x": 1}, {}),
        ({"payload": "hello"}, "hello", ""),
        ({"payload": 7}, 7, 0),
        ({"payload": 2.5}, 2.5, 0.0),
        ({"payload": True}, True, False),
        ({"payload": [1, 2]}, {"items": [1, 2]}, {"items": []}),  # no OFREP type is an array
        (
            {
                "variants": [
                    {"key": "a", "rollout_percentage": 100, "payload": [3]},
                    {"key": "b", "rollout_percentage": 0},
                ]
            },
            {"items": [3]},
            {"items": []},
        ),
        (
            {
                "variants": [
                    {"key": "a", "rollout_percentage": 0, "payload": {"y": 1}},
                    {"key": "b", "rollout_percentage": 100},
                ]
            },
            {},
            {},
        ),
    ],
)
def test_every_ofrep_answer_has_a_value_of_the_flags_one_type(row, on, off):
    """OFREP requests carry no type, and OpenFeature clients refuse a value unlike their default: one type per flag."""
    answers = [
        evaluate_flag(flag(key="f", **row), "u", {}),
        evaluate_flag(flag(key="f", rollout_percentage=0, **row), "u", {}),  # out of the rollout
        evaluate_flag(flag(key="f", active=False, **row), None, {}),
        evaluate_flag(
            flag(key="f", conditions=[{"properties": [{"key": "plan", "operator": "exact", "value": "pro"}]}], **row),
            "u",
            {},
        ),
    ]
    assert [a["value"] for a in answers] == [on, off, off, off]
    assert all(type(a["value"]) is type(on) and a["reason"] in REASONS for a in answers)
    assert [a["variant"] for a in answers][1:] == ["off", "disabled", "off"]


def test_ofrep_context_errors():
    assert read_context({"context": {"targetingKey": "u", "plan": "pro"}}) == ("u", {"plan": "pro"})
    assert read_context({"context": {"targetingKey": 42}}) == ("42", {})
    assert read_context(None) == (None, {})
    for body in ([], {"context": "x"}, {"context": {"targetingKey": ["u"]}}):
        with pytest.raises(OfrepError) as err:
            read_context(body)
        assert err.value.code == "INVALID_CONTEXT"
    with pytest.raises(OfrepError) as err:
        evaluate_flag(BOOL, None, {})
    assert err.value.code == "TARGETING_KEY_MISSING"
