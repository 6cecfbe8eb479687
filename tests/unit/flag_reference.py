"""The flag evaluator as it was before flags were compiled (an interpreter over the definition), kept as the
oracle the compiled evaluator is compared with (tests/unit/test_flag_compiled.py). Deliberately the old,
plain control flow: do not optimize it. It shares only the value helpers (number_of, text_of, parse_semver,
the RE2 searcher and bucket), which the operator table of test_flag_evaluator.py pins down.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from ingest_api.flags.definition import FlagDefinition, PropertyFilter, Variant, parse_semver
from ingest_api.flags.evaluator import FlagResult, bucket, number_of, text_of
from ingest_api.flags.pattern import searcher


def reference_evaluate(flag: FlagDefinition, distinct_id: str, properties: Mapping[str, Any]) -> FlagResult:
    if not flag.active:
        return FlagResult(False, None, None, "disabled", None)
    position = bucket(flag.key, distinct_id)
    if not flag.conditions:
        if position < flag.rollout_percentage / 100:
            return _included(flag, distinct_id, None, "rollout", None)
        return FlagResult(False, None, None, "out_of_rollout", None)

    first_out_of_rollout = None
    for index, group in enumerate(flag.conditions):
        if not all(reference_matches(f, properties) for f in group.properties):
            continue
        percentage = flag.rollout_percentage if group.rollout_percentage is None else group.rollout_percentage
        if position < percentage / 100:
            return _included(flag, distinct_id, group.variant, "condition_match", index)
        if first_out_of_rollout is None:
            first_out_of_rollout = index
    if first_out_of_rollout is not None:
        return FlagResult(False, None, None, "out_of_rollout", first_out_of_rollout)
    return FlagResult(False, None, None, "no_condition_match", None)


def _included(flag: FlagDefinition, distinct_id: str, forced: str | None, reason: str, index: int | None) -> FlagResult:
    if not flag.variants:
        return FlagResult(True, None, flag.payload, reason, index)
    by_key = {v.key: v for v in flag.variants}
    chosen = by_key[forced] if forced in by_key else _pick_variant(flag, distinct_id)
    return FlagResult(True, chosen.key, chosen.payload, reason, index)


def _pick_variant(flag: FlagDefinition, distinct_id: str) -> Variant:
    position = bucket(flag.key, distinct_id, salt="variant")
    upper = 0.0
    for variant in flag.variants:
        lower, upper = upper, upper + variant.rollout_percentage / 100
        if lower <= position < upper:
            return variant
    return flag.variants[-1]


def reference_matches(filter: PropertyFilter, properties: Mapping[str, Any]) -> bool:
    op, expected = filter.operator, filter.value
    actual = properties.get(filter.key)
    if actual is None:
        return op == "is_not_set"
    if op in ("is_set", "is_not_set"):
        return op == "is_set"
    if op in ("exact", "in", "is_not", "not_in"):
        options = expected if isinstance(expected, (list, tuple)) else [expected]
        found = any(_equal(actual, option) for option in options)
        return found if op in ("exact", "in") else not found
    if op in ("icontains", "not_icontains"):
        found = text_of(expected).lower() in text_of(actual).lower()
        return found if op == "icontains" else not found
    if op in ("regex", "not_regex"):
        search = searcher(expected) if isinstance(expected, str) else None
        if search is None:
            return False
        found = search(text_of(actual))
        return found if op == "regex" else not found
    if op in ("gt", "gte", "lt", "lte"):
        left, right = number_of(actual), number_of(expected)
        if left is None or right is None:
            return _compare(text_of(actual), text_of(expected), op)
        return _compare(left, right, op)
    if op.startswith("semver_"):
        left = parse_semver(text_of(actual))
        right = parse_semver(text_of(expected))
        if left is None or right is None:
            return False
        return _compare(left, right, op.removeprefix("semver_"))
    return False


_COMPARISONS = {"eq": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _compare(left: Any, right: Any, op: str) -> bool:
    return _COMPARISONS[op](left, right)


def _equal(actual: Any, expected: Any) -> bool:
    left, right = number_of(actual), number_of(expected)
    if left is not None and right is not None:
        return left == right
    return text_of(actual).lower() == text_of(expected).lower()
