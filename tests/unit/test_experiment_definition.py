"""Validation of experiment bodies, and the expected split copied from the flag."""

from __future__ import annotations

from datetime import UTC, datetime, timezone

import pytest

from ingest_api.experiments.definition import ExperimentDefinitionError, flag_variants, parse_experiment

MULTI = {
    "rollout_percentage": 100,
    "variants": [{"key": "control", "rollout_percentage": 40}, {"key": "a", "rollout_percentage": 60}],
}
BOOLEAN = {"rollout_percentage": 25, "variants": []}
BODY = {
    "name": "Checkout",
    "flag_key": "checkout",
    "goal_event": "purchase",
    "start_at": "2026-01-01T00:00:00Z",
    "end_at": "2026-02-01T00:00:00Z",
}


def errors(body, flag=MULTI, partial_of=None) -> dict[str, str]:
    with pytest.raises(ExperimentDefinitionError) as info:
        parse_experiment(body, flag, partial_of=partial_of)
    return info.value.fields


def test_a_multivariate_flag_gives_its_variants_and_control_by_default():
    fields = parse_experiment(BODY, MULTI)
    assert fields["control_variant"] == "control"
    assert fields["variants"] == [
        {"key": "control", "expected_percentage": 40.0},
        {"key": "a", "expected_percentage": 60.0},
    ]
    assert fields["start_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert fields["secondary_events"] == [] and fields["description"] == ""


@pytest.mark.parametrize("control", [None, "control", "false"])
def test_a_boolean_flag_has_true_and_false_and_false_is_the_control(control):
    body = {**BODY, **({"control_variant": control} if control else {})}
    fields = parse_experiment(body, BOOLEAN)
    assert fields["control_variant"] == "false"
    assert fields["variants"] == [
        {"key": "true", "expected_percentage": 25.0},
        {"key": "false", "expected_percentage": 75.0},
    ]


def test_every_problem_is_reported_with_its_field():
    found = errors(
        {
            "flag_key": "checkout",
            "goal_event": "",
            "control_variant": "b",
            "secondary_events": ["x", "x", 3],
            "start_at": "2026-03-01T00:00:00Z",
            "end_at": "2026-02-01T00:00:00Z",
            "colour": "red",
        }
    )
    assert set(found) == {
        "name",
        "goal_event",
        "control_variant",
        "secondary_events[1]",
        "secondary_events[2]",
        "end_at",
        "colour",
    }
    assert "control, a" in found["control_variant"]


def test_the_flag_must_exist_and_split_users():
    assert "no feature flag" in errors(BODY, flag=None)["flag_key"]
    assert "flag_key" in errors(BODY, flag={"rollout_percentage": 100, "variants": []})  # everyone gets true
    assert "control_variant" in errors(
        {**BODY, "control_variant": "a"},
        flag={"variants": [{"key": "control", "rollout_percentage": 100}, {"key": "a", "rollout_percentage": 0}]},
    )


def test_timestamps_and_secondary_events_are_checked():
    assert "start_at" in errors({**BODY, "start_at": "yesterday"})
    assert "end_at" in errors({**BODY, "end_at": BODY["start_at"]})
    assert "secondary_events" in errors({**BODY, "secondary_events": "signup"})
    assert "secondary_events[0]" in errors({**BODY, "secondary_events": ["purchase"]})  # the goal itself
    assert "goal_event" in errors({**BODY, "goal_event": "$feature_flag_called"})
    assert errors([1, 2]) == {"body": "must be a JSON object"}


def test_a_patch_is_validated_over_the_stored_experiment():
    stored = parse_experiment(BODY, MULTI)
    fields = parse_experiment({"goal_event": "signup"}, MULTI, partial_of=stored)
    assert fields["goal_event"] == "signup" and fields["start_at"] == stored["start_at"]
    assert "end_at" in errors({"end_at": "2025-12-01T00:00:00Z"}, partial_of=stored)


def test_flag_variants_of_a_boolean_flag_split_the_rollout():
    assert flag_variants({"rollout_percentage": 0, "variants": []}) == [
        {"key": "true", "expected_percentage": 0.0},
        {"key": "false", "expected_percentage": 100.0},
    ]


def test_text_postgres_cannot_store_is_a_field_error_not_a_crash():
    found = errors(
        {**BODY, "name": "a\x00b", "goal_event": "\udac4", "flag_key": "x\x00", "secondary_events": ["ok", "\x00"]},
        flag=None,
    )
    assert set(found) == {"name", "goal_event", "flag_key", "secondary_events[1]"}


def test_the_exposure_id_depends_on_the_utc_day_not_the_zone_of_the_datetime():
    from datetime import datetime, timedelta

    from ingest_api.flags.exposure import exposure_uuid

    utc = datetime(2026, 11, 26, 0, 20, tzinfo=UTC)
    st_johns = utc.astimezone(timezone(timedelta(hours=-3, minutes=-30)))  # still 25 November there
    assert exposure_uuid("f", "u1", st_johns) == exposure_uuid("f", "u1", utc)
    assert exposure_uuid("f", "u1", utc) != exposure_uuid("f", "u1", utc - timedelta(hours=1))
