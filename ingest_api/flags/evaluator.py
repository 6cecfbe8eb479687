"""Evaluate a feature flag for one user. Pure and deterministic.

Bucketing follows PostHog's formula so that assignments agree with
PostHog-compatible SDKs: sha1 of "<flag key>.<distinct id><salt>", first 15 hex
digits, scaled to [0, 1]. The rollout check uses the unsalted hash and the
variant pick uses salt "variant", so who is in and which variant they get are
independent of each other.

Property matching: a missing property (absent or null) fails every operator
except `is_not_set`; in particular it never matches a negative filter (is_not,
not_in, not_icontains, not_regex). Equality (exact/is_not/in/not_in) compares
numbers as numbers and everything else as case-insensitive text, as PostHog's
SDKs do, so "iOS" matches "ios" and "true" matches true. Regular expressions
run on RE2 (ingest_api/flags/pattern.py), in time linear in the text.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest_api.flags.definition import FlagDefinition, PropertyFilter, Variant, parse_semver
from ingest_api.flags.pattern import search

_LONG_SCALE = float(0xFFFFFFFFFFFFFFF)  # 15 hex digits
_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")


@dataclass(frozen=True)
class FlagResult:
    active: bool
    variant: str | None
    payload: Any
    reason: str  # disabled | out_of_rollout | condition_match | no_condition_match | rollout
    condition_index: int | None


def bucket(key: str, distinct_id: str, salt: str = "") -> float:
    """The user's fixed position in [0, 1] for this flag (PostHog's `_hash`)."""
    digest = hashlib.sha1(f"{key}.{distinct_id}{salt}".encode()).digest()
    # The first 15 hex digits are the top 60 bits of the first 8 bytes.
    return (int.from_bytes(digest[:8], "big") >> 4) / _LONG_SCALE


def evaluate(flag: FlagDefinition, distinct_id: str, properties: Mapping[str, Any]) -> FlagResult:
    """Is the flag on for this user, with which variant and payload, and why.

    Two deliberate differences from PostHog's matcher: groups are tried in the
    order listed (PostHog moves groups that force a variant to the front), and
    a user is in when bucket < percentage (PostHog: <=), so 0% means nobody.
    """
    if not flag.active:
        return FlagResult(False, None, None, "disabled", None)
    position = bucket(flag.key, distinct_id)
    if not flag.conditions:
        if position < flag.rollout_percentage / 100:
            return _included(flag, distinct_id, None, "rollout", None)
        return FlagResult(False, None, None, "out_of_rollout", None)

    first_out_of_rollout = None
    for index, group in enumerate(flag.conditions):
        if not all(matches(f, properties) for f in group.properties):
            continue
        percentage = flag.rollout_percentage if group.rollout_percentage is None else group.rollout_percentage
        if position < percentage / 100:
            return _included(flag, distinct_id, group.variant, "condition_match", index)
        if first_out_of_rollout is None:
            first_out_of_rollout = index
    # Targeted but not rolled out to is a different story from not targeted at all.
    if first_out_of_rollout is not None:
        return FlagResult(False, None, None, "out_of_rollout", first_out_of_rollout)
    return FlagResult(False, None, None, "no_condition_match", None)


def _included(flag: FlagDefinition, distinct_id: str, forced: str | None, reason: str, index: int | None) -> FlagResult:
    if not flag.variants:
        return FlagResult(True, None, flag.payload, reason, index)
    by_key = {v.key: v for v in flag.variants}
    # An unknown forced variant can only come from an unvalidated row; fall back to hashing like PostHog.
    chosen = by_key[forced] if forced in by_key else _pick_variant(flag, distinct_id)
    return FlagResult(True, chosen.key, chosen.payload, reason, index)


def _pick_variant(flag: FlagDefinition, distinct_id: str) -> Variant:
    position = bucket(flag.key, distinct_id, salt="variant")
    upper = 0.0
    for variant in flag.variants:
        lower, upper = upper, upper + variant.rollout_percentage / 100
        if lower <= position < upper:
            return variant
    # Only reachable when float rounding leaves the last range just short of 1.
    return flag.variants[-1]


def matches(filter: PropertyFilter, properties: Mapping[str, Any]) -> bool:
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
        found = _text(expected).lower() in _text(actual).lower()
        return found if op == "icontains" else not found
    if op in ("regex", "not_regex"):
        found = search(expected, _text(actual)) if isinstance(expected, str) else None
        if found is None:  # RE2 refuses it (saved before patterns were checked with RE2): never matches, negated or not
            return False
        return found if op == "regex" else not found
    if op in ("gt", "gte", "lt", "lte"):
        left, right = _number(actual), _number(expected)
        if left is None or right is None:
            return _compare(_text(actual), _text(expected), op)
        return _compare(left, right, op)
    if op.startswith("semver_"):
        left = parse_semver(_text(actual))
        right = parse_semver(_text(expected))
        if left is None or right is None:
            return False
        return _compare(left, right, op.removeprefix("semver_"))
    return False  # unknown operator: never true


_COMPARISONS = {"eq": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _compare(left: Any, right: Any, op: str) -> bool:
    return _COMPARISONS[op](left, right)


def _equal(actual: Any, expected: Any) -> bool:
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return left == right  # "1.0" equals 1
    return _text(actual).lower() == _text(expected).lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return None


def _text(value: Any) -> str:
    """Property values as the strings they were written as in JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)
