"""The compiled evaluator answers exactly what the interpreter it replaced answered (tests/unit/flag_reference.py),
over every operator x filter value x property value, and over random definitions and users."""

from __future__ import annotations

import itertools
import random

import pytest

from ingest_api.flags.definition import OPERATORS, ConditionGroup, FlagDefinition, PropertyFilter, Variant
from ingest_api.flags.evaluator import CompiledFlag, compile_filter, hash_limit
from tests.unit.flag_reference import reference_evaluate, reference_matches

# Values a filter or a property can hold, chosen where the rules have edges: numbers written as text, case,
# booleans against "true"/1, integral floats, non-finite numbers, versions with prefixes and suffixes,
# JSON objects and lists, empty text, a lone surrogate, patterns RE2 refuses.
VALUES = [
    "iOS", "ios", "IOS ", "Android", "", " ", "pro", "team", "PRO",
    "3", "3.0", " 3 ", "+3", "-3", "1e3", "1000", ".5", "0.5", "1e999", "nan", "inf", "abc", "b", "c",
    "1.2.3", "v1.2.3", "1.10.0", "1.2", "2", "2.0.0-rc.1", "V2.0.0", "1.2.3.4", "not-a-version", "2024-06-30",
    3, 0, -1, 1000, 3.0, 0.5, -0.0, 2.5, 1e300, float("inf"), float("nan"), True, False,
    ["pro", "team"], ["iOS", 3], [3, "3.0"], [True], [], {"a": 1}, {"b": [1, 2]},
    "\ud800x", r"^\d+$", r"(?i)^ios$", "([", r"(a)\1", "pro|team",
]  # fmt: skip


def _same(filter: PropertyFilter, properties: dict) -> None:
    key, if_missing, test = compile_filter(filter)
    actual = properties.get(key)
    got = if_missing if actual is None else test(actual)
    assert got is reference_matches(filter, properties), (filter, properties)


@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_every_operator_value_and_property_matches_like_the_interpreter(operator):
    for expected, actual in itertools.product(VALUES, [*VALUES, None]):
        _same(PropertyFilter("p", operator, expected), {"p": actual})
    _same(PropertyFilter("p", operator, "x"), {})


def test_rows_saved_before_checks_compile_to_never_matching_instead_of_failing():
    # A snapshot must load whatever an old row holds: these never match (the interpreter raised on some).
    for operator in ("semver_between", "foo", "", None, 3, ["exact"]):
        key, if_missing, test = compile_filter(PropertyFilter("p", operator, "1.0.0"))
        assert (key, if_missing) == ("p", False) and test("1.0.0") is False
    unhashable_forced = ConditionGroup((), None, ["a"])  # type: ignore[arg-type]
    forced_unhashable = FlagDefinition("k", True, 100.0, (Variant("a", 100.0, "pa"),), (unhashable_forced,))
    assert CompiledFlag(forced_unhashable).evaluate("u", {}).variant == "a"  # hashed, like an unknown forced variant


# --- random definitions -----------------------------------------------------------------------------------

PROPERTY_NAMES = ["os_name", "app_version", "plan", "email", "age", "beta"]


def _percentage(rng: random.Random) -> float:
    return rng.choice([0.0, 100.0, 50.0, 0.5, 99.99, float(rng.randint(0, 100)), round(rng.uniform(0, 100), 3)])


def _variants(rng: random.Random) -> tuple[Variant, ...]:
    weights = rng.choice([[50, 50], [33.33, 33.33, 33.34], [0, 100], [100], [50, 20, 20, 5, 5], [10, 0, 90]])
    return tuple(Variant(f"v{i}", float(w), rng.choice([None, {"i": i}, [i], f"p{i}"])) for i, w in enumerate(weights))


def _filter(rng: random.Random) -> PropertyFilter:
    return PropertyFilter(rng.choice(PROPERTY_NAMES), rng.choice(sorted(OPERATORS)), rng.choice(VALUES))


def _definition(rng: random.Random, n: int) -> FlagDefinition:
    variants = _variants(rng) if rng.random() < 0.5 else ()
    forced = [None, None, "v0", "v1", "unknown"]
    conditions = tuple(
        ConditionGroup(
            tuple(_filter(rng) for _ in range(rng.choice([0, 1, 1, 2, 3]))),
            rng.choice([None, _percentage(rng)]),
            rng.choice(forced) if variants else None,
        )
        for _ in range(rng.choice([0, 0, 1, 2, 3]))
    )
    return FlagDefinition(
        f"flag-{n}", rng.random() < 0.9, _percentage(rng), variants, conditions, rng.choice([None, {"x": n}, "p"])
    )


def _user(rng: random.Random) -> tuple[str, dict]:
    distinct_id = rng.choice([f"user-{rng.randrange(10**7)}", f"distinct_id_{rng.randrange(1000)}", "é-ü", "1"])
    properties = {name: rng.choice([*VALUES, None]) for name in PROPERTY_NAMES if rng.random() < 0.6}
    return distinct_id, properties


@pytest.mark.parametrize("seed", range(4))
def test_random_definitions_and_users_get_the_interpreters_results(seed):
    rng = random.Random(seed)
    for n in range(150):
        definition = _definition(rng, n)
        compiled = CompiledFlag(definition)
        for _ in range(60):
            distinct_id, properties = _user(rng)
            assert compiled.evaluate(distinct_id, properties) == reference_evaluate(
                definition, distinct_id, properties
            ), (definition, distinct_id, properties)


def test_each_outcome_is_decided_and_reachable_outcomes_are_listed_once():
    rng = random.Random(7)
    definition = FlagDefinition(
        "multi", True, 60.0, _variants(random.Random(1)), (ConditionGroup((_filter(rng),), 40.0, None),)
    )
    compiled = CompiledFlag(definition)
    assert len({id(o) for o in compiled.outcomes}) == len(compiled.outcomes)
    for _ in range(500):
        distinct_id, properties = _user(rng)
        index = compiled.decide(distinct_id.encode(), properties)
        assert compiled.outcomes[index] == reference_evaluate(definition, distinct_id, properties)


# --- percentages as limits on the digest ------------------------------------------------------------------

LONG_SCALE = float(0xFFFFFFFFFFFFFFF)


def _below(first_8_bytes: int, fraction: float) -> bool:
    """The interpreter's test: the position (top 60 bits scaled to [0, 1]) below the fraction."""
    return (first_8_bytes >> 4) / LONG_SCALE < fraction


@pytest.mark.parametrize(
    "fraction",
    [0.0, 1.0, 0.5, 0.45, 0.55, 0.1 + 0.2, 1e-18, 5e-324, 1 - 2**-53, 0.999999999999, -0.1, 1.5, float("nan")],
)
def test_hash_limit_splits_the_digests_exactly_where_the_position_does(fraction):
    limit = hash_limit(fraction)
    assert 0 <= limit <= 2**64
    if limit > 0:
        assert _below(limit - 1, fraction)
    if limit < 2**64:
        assert not _below(limit, fraction)


def test_hash_limit_of_every_percentage_with_two_decimals():
    for hundredths in range(10_001):
        fraction = hundredths / 100 / 100  # as the evaluator computes it from a stored percentage
        limit = hash_limit(fraction)
        assert limit == 0 or _below(limit - 1, fraction)
        assert limit == 2**64 or not _below(limit, fraction)
