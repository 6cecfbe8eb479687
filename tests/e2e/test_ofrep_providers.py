"""Every flag state through OpenFeature's OFREP providers against the running server: the Python provider
(openfeature-provider-ofrep), and the JavaScript server (@openfeature/ofrep-provider) and web
(@openfeature/ofrep-web-provider) providers in Node (tests/js, installed by `make js`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from openfeature import api as openfeature
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

from tests.conftest import wait_until
from tests.e2e.test_public_flags_api import _create

JS = Path(__file__).resolve().parents[1] / "js"
REPO = JS.parents[1]
LAYOUTS = [{"key": "grid", "rollout_percentage": 100}, {"key": "list", "rollout_percentage": 0}]
PRO = [{"key": "plan", "operator": "exact", "value": "pro"}]
FLAGS = {
    "bool-on": {},
    "bool-off": {"rollout_percentage": 0},
    "bool-targeted": {"conditions": [{"properties": PRO}]},
    "bool-unmatched": {"conditions": [{"properties": [{"key": "plan", "operator": "exact", "value": "beta"}]}]},
    "multi-on": {"variants": LAYOUTS},
    "multi-off": {"variants": LAYOUTS, "rollout_percentage": 0},
    "multi-forced": {"variants": LAYOUTS, "conditions": [{"properties": PRO, "variant": "list"}]},
    "disabled": {"active": False},
    "disabled-multi": {"active": False, "variants": LAYOUTS},
    "object": {"payload": {"text": "Hello"}},
    "object-off": {"payload": {"text": "Hello"}, "rollout_percentage": 0},
    "multi-payload": {
        "variants": [
            {"key": "monthly", "rollout_percentage": 0, "payload": {"price": 5}},
            {"key": "annual", "rollout_percentage": 100, "payload": {"price": 49}},
        ]
    },
    "string": {"payload": "hello"},
    "integer": {"payload": 7},
    "float": {"payload": 2.5},
    "boolean": {"payload": True},
    "array": {"payload": [1, 2]},
}
# flag, type asked for, the code's default, then what every provider must answer: value, variant, reason.
CASES = [
    ("bool-on", "boolean", False, True, "on", "STATIC"),
    ("bool-off", "boolean", True, False, "off", "SPLIT"),
    ("bool-targeted", "boolean", False, True, "on", "TARGETING_MATCH"),
    ("bool-unmatched", "boolean", True, False, "off", "TARGETING_MATCH"),
    ("multi-on", "string", "default", "grid", "grid", "SPLIT"),
    ("multi-off", "string", "default", "", "off", "SPLIT"),
    ("multi-forced", "string", "default", "list", "list", "TARGETING_MATCH"),
    ("disabled", "boolean", True, False, "disabled", "DISABLED"),
    ("disabled-multi", "string", "default", "", "disabled", "DISABLED"),
    ("object", "object", {}, {"text": "Hello"}, "on", "STATIC"),
    ("object-off", "object", {"d": 1}, {}, "off", "SPLIT"),
    ("multi-payload", "object", {}, {"price": 49}, "annual", "SPLIT"),
    ("string", "string", "default", "hello", "on", "STATIC"),
    ("integer", "number", 0, 7, "on", "STATIC"),
    ("float", "number", 0.0, 2.5, "on", "STATIC"),
    ("boolean", "boolean", False, True, "on", "STATIC"),
    ("array", "object", {}, {"items": [1, 2]}, "on", "STATIC"),  # no OFREP value type is an array
]
CONTEXT = {"targetingKey": "user-1", "plan": "pro"}


@pytest.fixture
def every_flag_state(api, admin):
    for key, fields in FLAGS.items():
        _create(admin, key=key, **fields)
    wait_until(
        lambda: (
            len(api.post("/ofrep/v1/evaluate/flags", json={"context": CONTEXT}).json().get("flags", [])) == len(FLAGS)
        )
    )


def test_the_python_provider_evaluates_every_flag_state_cleanly(server, every_flag_state):
    openfeature.set_provider(OFREPProvider(server.url))
    try:
        client = openfeature.get_client()
        context = EvaluationContext(targeting_key=CONTEXT["targetingKey"], attributes={"plan": "pro"})
        for flag, kind, default, value, variant, reason in CASES:
            getter = {
                "boolean": client.get_boolean_details,
                "string": client.get_string_details,
                "object": client.get_object_details,
            }.get(kind)
            if kind == "number":
                getter = client.get_float_details if isinstance(default, float) else client.get_integer_details
            details = getter(flag, default, context)
            assert (details.value, details.variant, details.reason, details.error_code) == (
                value,
                variant,
                reason,
                None,
            ), flag
        missing = client.get_boolean_details("no-such-flag", False, context)
        assert (missing.value, missing.error_code) == (False, "FLAG_NOT_FOUND")
    finally:
        openfeature.clear_providers()


def test_the_javascript_server_and_web_providers_evaluate_every_flag_state_cleanly(server, every_flag_state):
    subprocess.run(["make", "--no-print-directory", "-s", "js"], cwd=REPO, check=True, timeout=300)
    cases = [{"flag": flag, "type": kind, "default": default} for flag, kind, default, *_ in CASES]
    cases.append({"flag": "no-such-flag", "type": "boolean", "default": False})
    run = subprocess.run(
        ["node", str(JS / "ofrep_check.mjs"), server.url],
        input=json.dumps({"context": CONTEXT, "cases": cases}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # a failure is reported with node's stderr below
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    for provider in ("server", "web"):
        *answers, missing = results[provider]
        for (flag, _, _, value, variant, reason), got in zip(CASES, answers, strict=True):
            expected = {"value": value, "variant": variant, "reason": reason, "errorCode": None, "errorMessage": None}
            assert got == expected, (provider, flag)
        assert (missing["value"], missing["errorCode"], missing["reason"]) == (False, "FLAG_NOT_FOUND", "ERROR"), (
            provider
        )
