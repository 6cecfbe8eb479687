import pytest

from ingest_api.flags.definition import (
    OPERATORS,
    ConditionGroup,
    FlagDefinition,
    FlagDefinitionError,
    PropertyFilter,
    Variant,
    flag_from_row,
    parse_flag_definition,
)
from ingest_api.flags.evaluator import evaluate


def errors_of(data, partial_of=None) -> dict[str, str]:
    with pytest.raises(FlagDefinitionError) as info:
        parse_flag_definition(data, partial_of=partial_of)
    return info.value.fields


FULL = {
    "key": "new-checkout",
    "name": "New checkout",
    "description": "Redesigned checkout",
    "active": True,
    "rollout_percentage": 25.5,
    "variants": [
        {"key": "control", "rollout_percentage": 50, "payload": None},
        {"key": "one-page", "rollout_percentage": 50, "payload": {"steps": 1}},
    ],
    "conditions": [
        {
            "properties": [
                {"key": "app_version", "operator": "semver_gte", "value": "3.2.0"},
                {"key": "os_name", "operator": "in", "value": ["iOS", "Android"]},
            ],
            "rollout_percentage": None,
            "variant": "one-page",
        }
    ],
    "payload": {"banner": "hi"},
}


def test_minimal_body_gets_documented_defaults():
    assert parse_flag_definition({"key": "dark-mode"}) == {
        "key": "dark-mode",
        "name": "dark-mode",
        "description": "",
        "active": True,
        "rollout_percentage": 0,  # nobody until a percentage is stated
        "variants": [],
        "conditions": [],
        "payload": None,
    }


def test_full_body_round_trips():
    assert parse_flag_definition(FULL) == FULL


def test_filters_and_groups_are_normalized():
    out = parse_flag_definition(
        {"key": "k", "conditions": [{"properties": [{"key": "email", "operator": "is_set", "value": "ignored"}]}, {}]}
    )
    assert out["conditions"] == [
        {
            "properties": [{"key": "email", "operator": "is_set", "value": None}],
            "rollout_percentage": None,
            "variant": None,
        },
        {"properties": [], "rollout_percentage": None, "variant": None},
    ]


@pytest.mark.parametrize("key", ["", "Dark-Mode", "-dark", "_dark", "dark mode", "dark.mode", "k" * 201, 42, None])
def test_bad_key_is_refused(key):
    assert "key" in errors_of({"key": key})


@pytest.mark.parametrize("key", ["a", "9lives", "dark_mode-v2", "k" * 200])
def test_good_keys(key):
    assert parse_flag_definition({"key": key})["key"] == key


def test_missing_key_is_refused():
    assert "key" in errors_of({"name": "x"})


@pytest.mark.parametrize("rollout", [-1, 100.5, "50", True, None, float("nan"), [50]])
def test_rollout_out_of_range_or_not_a_number_is_refused(rollout):
    assert errors_of({"key": "k", "rollout_percentage": rollout}) == {
        "rollout_percentage": "must be a number from 0 to 100"
    }


@pytest.mark.parametrize("rollout", [0, 100, 33.33, 0.001])
def test_rollout_accepts_0_to_100_with_decimals(rollout):
    assert parse_flag_definition({"key": "k", "rollout_percentage": rollout})["rollout_percentage"] == rollout


@pytest.mark.parametrize("rollout", [-1, 100.5, "50", True])
def test_group_and_variant_rollouts_are_checked_too(rollout):
    errors = errors_of(
        {
            "key": "k",
            "variants": [{"key": "a", "rollout_percentage": rollout}],
            "conditions": [{"rollout_percentage": rollout}],
        }
    )
    assert "variants[0].rollout_percentage" in errors
    assert "conditions[0].rollout_percentage" in errors


def test_variant_weights_must_sum_to_100():
    variants = [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 40}]
    errors = errors_of({"key": "k", "variants": variants})
    assert errors == {"variants": "rollout percentages must sum to 100 (got 90)"}


def test_variant_weights_sum_tolerates_float_error():
    thirds = [{"key": k, "rollout_percentage": 100 / 3} for k in ("a", "b", "c")]
    assert len(parse_flag_definition({"key": "k", "variants": thirds})["variants"]) == 3
    tenths = [{"key": f"v{i}", "rollout_percentage": 10.1} for i in range(9)]
    tenths.append({"key": "last", "rollout_percentage": 9.1})
    parse_flag_definition({"key": "k", "variants": tenths})


def test_duplicate_variant_keys_are_refused():
    variants = [{"key": "a", "rollout_percentage": 50}, {"key": "a", "rollout_percentage": 50}]
    errors = errors_of({"key": "k", "variants": variants})
    assert errors == {"variants[1].key": "duplicate variant key 'a'"}


def test_variant_key_must_be_a_slug():
    assert "variants[0].key" in errors_of({"key": "k", "variants": [{"key": "Big A", "rollout_percentage": 100}]})


def test_forced_variant_must_be_one_of_the_variants():
    body = {**FULL, "conditions": [{"properties": [], "variant": "nope"}]}
    assert errors_of(body) == {
        "conditions[0].variant": "unknown variant 'nope': must be one of the flag's variant keys"
    }
    assert "conditions[0].variant" in errors_of({"key": "k", "conditions": [{"variant": "control"}]})


def test_unknown_operator_is_refused_with_its_path():
    filters = [{"key": "a", "operator": "exact", "value": 1}, {"key": "b", "operator": "foo", "value": 1}]
    body = {"key": "k", "conditions": [{"properties": filters}]}
    assert errors_of(body) == {"conditions[0].properties[1].operator": "unknown operator 'foo'"}


def test_invalid_regex_is_a_definition_error():
    body = {"key": "k", "conditions": [{"properties": [{"key": "a", "operator": "regex", "value": "(["}]}]}
    assert errors_of(body)["conditions[0].properties[0].value"].startswith("invalid regular expression")


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)b", r"(?<!x)a", r"(?P<n>a)(?P=n)", "a{1001}"])
def test_patterns_re2_cannot_run_in_linear_time_are_refused(pattern):
    """Python's `re` accepts these; RE2, which evaluation runs on, does not (backreferences, lookaround)."""
    import re

    re.compile(pattern)
    body = {"key": "k", "conditions": [{"properties": [{"key": "a", "operator": "not_regex", "value": pattern}]}]}
    assert errors_of(body)["conditions[0].properties[0].value"].startswith("invalid regular expression: ")


@pytest.mark.parametrize(
    "operator, value",
    [
        ("in", "pro"),
        ("not_in", []),
        ("exact", {"a": 1}),
        ("exact", None),
        ("icontains", ["x"]),
        ("gt", None),
        ("semver_gte", "latest"),
        ("semver_eq", 3),
        ("not_regex", 5),
    ],
)
def test_filter_value_must_suit_its_operator(operator, value):
    body = {"key": "k", "conditions": [{"properties": [{"key": "p", "operator": operator, "value": value}]}]}
    assert "conditions[0].properties[0].value" in errors_of(body)


def test_every_operator_accepts_a_sensible_value():
    samples = {"in": ["a"], "not_in": ["a"], "regex": "^a", "not_regex": "^a", "gt": 3, "gte": "2024-01-01"}
    props = [{"key": "p", "operator": op, "value": samples.get(op, "1.2.3")} for op in sorted(OPERATORS)]
    out = parse_flag_definition({"key": "k", "conditions": [{"properties": props}]})
    assert len(out["conditions"][0]["properties"]) == len(OPERATORS) == 19


def test_unknown_fields_are_refused_at_every_level():
    body = {
        "key": "k",
        "id": 3,
        "colour": "red",
        "variants": [{"key": "a", "rollout_percentage": 100, "name": "A"}],
        "conditions": [{"properties": [{"key": "p", "operator": "is_set", "type": "person"}], "groups": []}],
    }
    assert errors_of(body) == {
        "id": "unknown field",
        "colour": "unknown field",
        "variants[0].name": "unknown field",
        "conditions[0].groups": "unknown field",
        "conditions[0].properties[0].type": "unknown field",
    }


def test_all_errors_are_reported_together():
    errors = errors_of({"key": "Bad Key", "active": "yes", "rollout_percentage": 101, "name": "", "description": 5})
    assert set(errors) == {"key", "active", "rollout_percentage", "name", "description"}


def test_body_must_be_an_object():
    assert errors_of([1, 2]) == {"body": "must be a JSON object"}


def test_structures_must_be_lists_and_objects():
    errors = errors_of({"key": "k", "variants": {"a": 100}, "conditions": ["x", {"properties": "p"}]})
    assert errors == {
        "variants": "must be a list",
        "conditions[0]": "must be an object",
        "conditions[1].properties": "must be a list",
    }


STORED = {
    **parse_flag_definition(FULL),
    "id": 7,
    "version": 3,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-02T00:00:00Z",
}


def test_partial_update_merges_over_the_stored_flag():
    out = parse_flag_definition({"rollout_percentage": 80, "active": False}, partial_of=STORED)
    assert out == {**parse_flag_definition(FULL), "rollout_percentage": 80, "active": False}
    assert "id" not in out and "version" not in out  # bookkeeping stays with the caller


def test_partial_update_validates_the_merged_result():
    # Dropping the variants breaks the group that forces "one-page": caught although "conditions" was not sent.
    errors = errors_of({"variants": []}, partial_of=STORED)
    assert errors == {"conditions[0].variant": "unknown variant 'one-page': must be one of the flag's variant keys"}


def test_partial_update_replaces_lists_whole_and_refuses_unknown_fields():
    out = parse_flag_definition({"conditions": []}, partial_of=STORED)
    assert out["conditions"] == [] and out["variants"] == STORED["variants"]
    assert errors_of({"version": 4}, partial_of=STORED) == {"version": "unknown field"}


def test_partial_update_can_clear_payload_and_keeps_name():
    out = parse_flag_definition({"payload": None}, partial_of=STORED)
    assert out["payload"] is None and out["name"] == "New checkout"


def test_flag_from_row_builds_the_typed_model():
    assert flag_from_row(STORED) == FlagDefinition(
        key="new-checkout",
        active=True,
        rollout_percentage=25.5,
        variants=(Variant("control", 50.0, None), Variant("one-page", 50.0, {"steps": 1})),
        conditions=(
            ConditionGroup(
                properties=(
                    PropertyFilter("app_version", "semver_gte", "3.2.0"),
                    PropertyFilter("os_name", "in", ["iOS", "Android"]),
                ),
                rollout_percentage=None,
                variant="one-page",
            ),
        ),
        payload={"banner": "hi"},
    )


def test_parsed_definition_evaluates_end_to_end():
    f = flag_from_row({**parse_flag_definition(FULL), "rollout_percentage": 100})
    props = {"app_version": "v3.2.1", "os_name": "ios"}
    result = evaluate(f, "user-1", props)
    assert (result.active, result.variant, result.payload) == (True, "one-page", {"steps": 1})
    assert result.reason == "condition_match"
    assert evaluate(f, "user-1", {**props, "app_version": "3.1.9"}).reason == "no_condition_match"


def test_operator_that_is_not_a_string_is_a_field_error_not_a_crash():
    from ingest_api.flags.definition import FlagDefinitionError, parse_flag_definition

    for operator in ({}, [], 3, None):
        body = {"key": "f", "conditions": [{"properties": [{"key": "plan", "operator": operator, "value": "x"}]}]}
        try:
            parse_flag_definition(body)
        except FlagDefinitionError as err:
            assert "conditions[0].properties[0].operator" in err.fields
        else:
            raise AssertionError("accepted a non-string operator")
