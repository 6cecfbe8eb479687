import hashlib
import json
from pathlib import Path

import pytest

from ingest_api.flags.definition import ConditionGroup, FlagDefinition, PropertyFilter, Variant
from ingest_api.flags.evaluator import CompiledFlag, FlagResult, bucket, evaluate, matches


def flag(key="new-checkout", rollout=100, variants=(), conditions=(), payload=None, active=True):
    return FlagDefinition(key, active, rollout, tuple(variants), tuple(conditions), payload)


def group(*filters, rollout=None, variant=None):
    return ConditionGroup(tuple(PropertyFilter(*f) for f in filters), rollout, variant)


def ids(n, prefix="user-"):
    return [f"{prefix}{i}" for i in range(n)]


# --- bucketing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, distinct_id, salt",
    [("simple-flag", "distinct_id_0", ""), ("beta-feature", "user-1", ""), ("multivariate-flag", "x", "variant")],
)
def test_bucket_is_first_15_hex_digits_of_sha1_of_key_dot_id_salt(key, distinct_id, salt):
    digest = hashlib.sha1(f"{key}.{distinct_id}{salt}".encode()).hexdigest()
    assert bucket(key, distinct_id, salt) == int(digest[:15], 16) / 0xFFFFFFFFFFFFFFF


def test_bucket_pinned_values():
    assert bucket("simple-flag", "distinct_id_0") == 0.7836963764220432
    assert bucket("simple-flag", "distinct_id_1") == 0.3397069926995401
    assert bucket("beta-feature", "user-1") == 0.7264912549260886
    assert bucket("multivariate-flag", "distinct_id_2", salt="variant") == 0.06390106281412483


def test_bucket_stays_in_unit_interval():
    values = [bucket("range", i) for i in ids(5000)]
    assert all(0 <= v < 1 for v in values)
    assert min(values) < 0.01 and max(values) > 0.99


# PostHog's cross-SDK consistency vectors (1,000 users for a 45% rollout, 1,000 for a 55% rollout over five
# variants), which every SDK doing local evaluation must reproduce; the file says where they come from.
VECTORS = json.loads((Path(__file__).parent / "data" / "posthog_consistency_vectors.json").read_text())


def test_rollout_matches_posthog_consistency_vectors():
    vectors = VECTORS["simple-flag"]
    simple = flag("simple-flag", rollout=vectors["rollout_percentage"])
    got = "".join("1" if evaluate(simple, f"distinct_id_{i}", {}).active else "0" for i in range(1000))
    assert len(vectors["enabled"]) == 1000
    assert got == vectors["enabled"]


def test_variants_match_posthog_consistency_vectors():
    vectors = VECTORS["multivariate-flag"]
    variants = [Variant(k, w) for k, w in vectors["variants"]]
    multi = flag("multivariate-flag", rollout=vectors["rollout_percentage"], variants=variants)
    compiled = CompiledFlag(multi)
    got = [compiled.evaluate(f"distinct_id_{i}", {}).variant for i in range(1000)]
    assert len(vectors["variant"]) == 1000
    assert got == vectors["variant"]


def on(definition):
    """The definition compiled once, for the loops over many users."""
    return CompiledFlag(definition).evaluate


def test_raising_the_rollout_only_adds_users():
    users = ids(20_000)
    thirty, fifty = on(flag(rollout=30)), on(flag(rollout=50))
    at_30 = {u for u in users if thirty(u, {}).active}
    at_50 = {u for u in users if fifty(u, {}).active}
    assert at_30 < at_50
    assert abs(len(at_30) / len(users) - 0.30) < 0.02
    assert abs(len(at_50) / len(users) - 0.50) < 0.02


def test_rollout_zero_and_hundred_and_decimals():
    users = ids(2000)
    nobody, everybody, few = on(flag(rollout=0)), on(flag(rollout=100)), on(flag(rollout=0.5))
    assert not any(nobody(u, {}).active for u in users)
    assert all(everybody(u, {}).active for u in users)
    # 0.5% is a real, small audience: decimals are not truncated.
    share = sum(few(u, {}).active for u in ids(40_000)) / 40_000
    assert 0.003 < share < 0.007


def test_two_flags_bucket_users_independently():
    users = ids(20_000)
    a, b = on(flag("flag-a", rollout=50)), on(flag("flag-b", rollout=50))
    in_a = {u for u in users if a(u, {}).active}
    in_b = {u for u in users if b(u, {}).active}
    assert abs(len(in_a & in_b) / len(users) - 0.25) < 0.02


def test_variant_spread_follows_weights_over_100k_ids():
    weights = {"control": 50, "blue": 30, "green": 20}
    multi = on(flag("button-colour", variants=[Variant(k, w) for k, w in weights.items()]))
    counts = dict.fromkeys(weights, 0)
    n = 100_000
    for i in range(n):
        counts[multi(f"id-{i}", {}).variant] += 1
    for key, weight in weights.items():
        assert abs(counts[key] / n - weight / 100) < 0.02, (key, counts)


def test_variant_does_not_depend_on_rollout():
    # The variant hash is salted: raising the rollout never moves a user to another variant.
    variants = [Variant("a", 50), Variant("b", 50)]
    for u in ids(500):
        low = evaluate(flag(rollout=40, variants=variants), u, {})
        high = evaluate(flag(rollout=90, variants=variants), u, {})
        if low.active:
            assert low.variant == high.variant


def test_zero_weight_variant_is_never_assigned():
    multi = flag(variants=[Variant("never", 0), Variant("always", 100)])
    assert {evaluate(multi, u, {}).variant for u in ids(1000)} == {"always"}


# --- flag-level outcomes ------------------------------------------------------------------------


def test_inactive_flag_is_off_for_everyone_with_reason_disabled():
    off = flag(active=False, payload={"x": 1}, conditions=[group(("plan", "exact", "pro"))])
    assert evaluate(off, "u1", {"plan": "pro"}) == FlagResult(False, None, None, "disabled", None)


def test_no_conditions_reasons_rollout_and_out_of_rollout():
    # bucket("simple-flag", "distinct_id_0") ~ 0.78, "distinct_id_1" ~ 0.34
    half = flag("simple-flag", rollout=50, payload="p")
    assert evaluate(half, "distinct_id_1", {}) == FlagResult(True, None, "p", "rollout", None)
    assert evaluate(half, "distinct_id_0", {}) == FlagResult(False, None, None, "out_of_rollout", None)


def test_first_matching_group_wins_and_reports_its_index():
    f = flag(conditions=[group(("plan", "exact", "pro")), group(("os_name", "exact", "iOS"))])
    assert evaluate(f, "u", {"plan": "free", "os_name": "iOS"}) == FlagResult(True, None, None, "condition_match", 1)
    assert evaluate(f, "u", {"plan": "pro", "os_name": "iOS"}).condition_index == 0


def test_filters_in_a_group_are_anded():
    f = flag(conditions=[group(("plan", "exact", "pro"), ("os_name", "exact", "iOS"))])
    assert evaluate(f, "u", {"plan": "pro", "os_name": "iOS"}).active
    assert evaluate(f, "u", {"plan": "pro", "os_name": "Android"}).reason == "no_condition_match"


def test_group_without_filters_matches_everyone_in_its_rollout():
    assert evaluate(flag(conditions=[group()]), "anyone", {}).reason == "condition_match"


def test_no_group_matching_is_no_condition_match():
    f = flag(conditions=[group(("plan", "exact", "pro"))], payload="p")
    assert evaluate(f, "u", {"plan": "free"}) == FlagResult(False, None, None, "no_condition_match", None)


def test_group_rollout_overrides_flag_rollout():
    # bucket("simple-flag", "distinct_id_0") ~ 0.78: out at 50%, in at 90%.
    f = flag("simple-flag", rollout=90, conditions=[group(rollout=50)])
    assert evaluate(f, "distinct_id_0", {}) == FlagResult(False, None, None, "out_of_rollout", 0)
    f = flag("simple-flag", rollout=10, conditions=[group(rollout=90)])
    assert evaluate(f, "distinct_id_0", {}).active


def test_group_with_null_rollout_falls_back_to_flag_rollout():
    f_low = flag("simple-flag", rollout=50, conditions=[group(rollout=None)])
    f_high = flag("simple-flag", rollout=90, conditions=[group(rollout=None)])
    assert evaluate(f_low, "distinct_id_0", {}).reason == "out_of_rollout"
    assert evaluate(f_high, "distinct_id_0", {}).reason == "condition_match"


def test_later_group_can_admit_a_user_an_earlier_group_rolled_out_of():
    f = flag("simple-flag", conditions=[group(rollout=10), group(("plan", "exact", "pro"), rollout=100)])
    assert evaluate(f, "distinct_id_0", {"plan": "pro"}) == FlagResult(True, None, None, "condition_match", 1)
    assert evaluate(f, "distinct_id_0", {"plan": "free"}) == FlagResult(False, None, None, "out_of_rollout", 0)


def test_forced_variant_wins_over_hashing():
    variants = [Variant("control", 50, {"c": 1}), Variant("test", 50, {"t": 1})]
    f = flag(variants=variants, conditions=[group(("email", "icontains", "@staff"), variant="test"), group()])
    for u in ids(200):
        assert evaluate(f, u, {"email": "a@staff.io"}) == FlagResult(True, "test", {"t": 1}, "condition_match", 0)
    assert {evaluate(f, u, {"email": "a@gmail.com"}).variant for u in ids(200)} == {"control", "test"}


def test_payload_is_the_variants_when_assigned_else_the_flags():
    with_variants = flag(variants=[Variant("only", 100, [1, 2])], payload="flag-level")
    assert evaluate(with_variants, "u", {}).payload == [1, 2]
    no_variant_payload = flag(variants=[Variant("only", 100)], payload="flag-level")
    assert evaluate(no_variant_payload, "u", {}).payload is None
    assert evaluate(flag(payload={"theme": "dark"}), "u", {}).payload == {"theme": "dark"}


def test_users_left_out_get_no_variant_and_no_payload():
    f = flag(rollout=0, variants=[Variant("a", 100, "pa")], payload="p")
    assert evaluate(f, "u", {}) == FlagResult(False, None, None, "out_of_rollout", None)


def test_result_is_frozen():
    with pytest.raises(AttributeError):
        evaluate(flag(), "u", {}).active = False  # type: ignore[misc]


# --- property filters ------------------------------------------------------------------------


def m(operator, value, actual, key="p"):
    props = {} if actual is _MISSING else {key: actual}
    return matches(PropertyFilter(key, operator, value), props)


_MISSING = object()

CASES = [
    # operator, filter value, property value, expected
    ("exact", "iOS", "iOS", True),
    ("exact", "iOS", "ios", True),  # case-insensitive, like PostHog's SDKs
    ("exact", "iOS", "Android", False),
    ("exact", 3, "3.0", True),  # numbers compare as numbers
    ("exact", True, "true", True),
    ("exact", ["iOS", "Android"], "android", True),  # list value behaves like `in`
    ("exact", ["iOS", "Android"], "web", False),
    ("is_not", "iOS", "Android", True),
    ("is_not", "iOS", "IOS", False),
    ("is_not", ["iOS", "Android"], "web", True),
    ("is_not", ["iOS", "Android"], "iOS", False),
    ("in", ["pro", "team"], "team", True),
    ("in", ["pro", "team"], "free", False),
    ("in", [1, 2], 2, True),
    ("not_in", ["pro", "team"], "free", True),
    ("not_in", ["pro", "team"], "pro", False),
    ("icontains", "STAFF", "bob@staff.io", True),
    ("icontains", "staff", "bob@gmail.com", False),
    ("not_icontains", "staff", "bob@gmail.com", True),
    ("not_icontains", "staff", "bob@Staff.io", False),
    ("regex", r"^\d+\.\d+", "12.4 beta", True),
    ("regex", r"^beta", "12.4 beta", False),  # search, anchored by the pattern only
    ("regex", r"beta", "12.4 beta", True),
    ("not_regex", r"beta", "12.4", True),
    ("not_regex", r"beta", "12.4 beta", False),
    ("gt", 10, 11, True),
    ("gt", 10, "9", False),  # both parse as numbers: 9 > 10, although "9" > "10" as text
    ("gt", 10, 10, False),
    ("gte", 10, 10, True),
    ("gte", "10", 9.5, False),
    ("lt", 10, "9", True),
    ("lt", 10, 10, False),
    ("lte", 10, 10.0, True),
    ("lte", 10, 11, False),
    ("gt", "b", "c", True),  # not numbers: compared as text
    ("lt", "b", "c", False),
    ("gte", "2024-01-01", "2024-06-30", True),  # ISO dates compare well as text
    ("is_set", None, "anything", True),
    ("is_set", None, 0, True),
    ("is_set", None, False, True),
    ("is_not_set", None, "anything", False),
    ("semver_eq", "1.2.3", "1.2.3", True),
    ("semver_eq", "1.2.3", "v1.2.3", True),
    ("semver_eq", "1.2", "1.2.0", True),  # missing parts are 0
    ("semver_eq", "1.2.3", "1.2.3-beta.1+build.5", True),  # pre-release/build ignored
    ("semver_eq", "1.2.3", "1.2.4", False),
    ("semver_gt", "1.2.3", "1.10.0", True),  # numeric, not lexicographic
    ("semver_gt", "1.2.3", "1.2.3", False),
    ("semver_gt", "1.2.3", "1.2.2", False),
    ("semver_gte", "2.0.0", "2.0.0-rc.1", True),
    ("semver_gte", "2.0.0", "2", True),
    ("semver_gte", "2.0.0", "1.99.99", False),
    ("semver_lt", "2.0.0", "1.9", True),
    ("semver_lt", "2.0.0", "2.0.0", False),
    ("semver_lt", "2.0.0", "10.0.0", False),
    ("semver_lte", "2.0.0", "V2.0.0", True),
    ("semver_lte", "2.0.0", "2.0.1", False),
    ("semver_gt", "1.0.0", "not-a-version", False),  # unparseable never matches
    ("semver_lt", "1.0.0", "1.2.3.4", False),
]


@pytest.mark.parametrize("operator, value, actual, expected", CASES)
def test_operator(operator, value, actual, expected):
    assert m(operator, value, actual) is expected


ALL_OPERATORS = sorted({c[0] for c in CASES})


def test_every_operator_has_cases():
    from ingest_api.flags.definition import OPERATORS

    assert set(ALL_OPERATORS) == OPERATORS


@pytest.mark.parametrize("operator", ALL_OPERATORS)
def test_missing_property_fails_every_operator_but_is_not_set(operator):
    value = {"in": ["x"], "not_in": ["x"], "regex": "x", "not_regex": "x"}.get(operator, "1.0.0")
    expected = operator == "is_not_set"
    assert m(operator, value, _MISSING) is expected
    assert m(operator, value, None) is expected  # null is the same as absent


def test_negative_filters_never_match_a_missing_property():
    assert not m("is_not", "iOS", _MISSING)
    assert not m("not_in", ["iOS"], _MISSING)
    assert not m("not_icontains", "x", _MISSING)
    assert not m("not_regex", "x", _MISSING)


def test_invalid_regex_never_matches_either_way():
    assert not m("regex", "([", "([")
    assert not m("not_regex", "([", "anything")
    assert not m("regex", r"(a)\1", "aa")  # Python-only syntax in a row saved before RE2: never matches either
    assert not m("not_regex", r"(a)\1", "ab")


def test_regex_semantics_kept_by_re2():
    assert m("regex", r"(?i)^IOS$", "ios")  # inline flags
    assert m("regex", r"^\w+@[a-z]+\.io$", "bob@staff.io")
    assert m("regex", "é", "café")  # text is matched as Unicode characters
    assert m("regex", r"^.{4}$", "café")
    assert m("regex", r"^\d+$", 12345)  # non-strings as their JSON text
    assert m("regex", r"^([a-z0-9]+\.?)+@example\.com$", "first.last@example.com")  # the pattern still works
    assert m("regex", "x$", "\ud800x") and not m("regex", "y", "\ud800x")  # a lone surrogate (stdlib JSON) is no error


def test_unknown_operator_never_matches():
    assert not m("foo", "x", "x")


def test_event_fields_match_like_person_properties():
    props = {"plan": "pro", "app_version": "3.4.1", "os_name": "Android", "os_version": "14", "device_id": "d1"}
    f = flag(
        conditions=[
            group(("app_version", "semver_gte", "3.4"), ("os_name", "exact", "android"), ("os_version", "gte", 13))
        ]
    )
    assert evaluate(f, "u", props).active
    assert not evaluate(f, "u", {**props, "app_version": "3.3.9"}).active
