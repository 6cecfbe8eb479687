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

Compiled once, evaluated often: the config cache turns each definition into a
`CompiledFlag` when it loads the flags. Everything that depends on the
definition alone is worked out then (thresholds, lowered option texts, parsed
versions and numbers, regexes, every possible `FlagResult`), so evaluating is a
few comparisons and at most two sha1 digests, and the unsalted one only once a
condition group matches; percentages become limits on the digest's first 8
bytes (`hash_limit`), so bucketing compares integers, to the same answers. Unknown operators or values (rows saved before a
check existed) compile to "never matches", never to an error.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ingest_api.flags.definition import ConditionGroup, FlagDefinition, PropertyFilter, parse_semver
from ingest_api.flags.pattern import searcher

_LONG_SCALE = float(0xFFFFFFFFFFFFFFF)  # 15 hex digits
_FIRST_8_BYTES = struct.Struct(">Q").unpack_from
_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_sha1 = hashlib.sha1


@dataclass(frozen=True)
class FlagResult:
    active: bool
    variant: str | None
    payload: Any
    reason: str  # disabled | out_of_rollout | condition_match | no_condition_match | rollout
    condition_index: int | None


def bucket(key: str, distinct_id: str, salt: str = "") -> float:
    """The user's fixed position in [0, 1] for this flag (PostHog's `_hash`)."""
    return _position(f"{key}.{distinct_id}{salt}".encode())


def _position(hashed: bytes) -> float:
    # The first 15 hex digits are the top 60 bits of the first 8 bytes.
    return (_FIRST_8_BYTES(_sha1(hashed).digest())[0] >> 4) / _LONG_SCALE


def hash_limit(fraction: float) -> int:
    """The first 8 bytes of the digest (as an integer) of the first user at or above `fraction`.

    `position < fraction` exactly when `first 8 bytes < hash_limit(fraction)`: the position (the top 60 bits,
    converted to a float and divided, each step rounding the same way whatever the value) never decreases
    as the integer grows, so the users below `fraction` are the integers below one limit, found here by
    bisection with the position's own arithmetic. Evaluation then compares two integers.
    """
    low, high = 0, 1 << 60  # the least 60-bit value whose position is not below `fraction` (2**60: none is)
    while low < high:
        middle = (low + high) // 2
        if middle / _LONG_SCALE < fraction:
            low = middle + 1
        else:
            high = middle
    return low << 4


# --- property filters ----------------------------------------------------------------------------

# A compiled filter: (property name, the answer when it is missing or null, the test of a present value).
Check = tuple[str, bool, Callable[[Any], bool]]


def _never(actual: Any) -> bool:
    return False


def _always(actual: Any) -> bool:
    return True


def _negated(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda actual: not test(actual)


def _lowered(value: Any) -> str:
    return value.lower() if type(value) is str else text_of(value).lower()


def _equality(expected: Any) -> Callable[[Any], bool]:
    """exact / in: any option equal, as numbers when both parse as numbers, else as case-insensitive text."""
    options = expected if isinstance(expected, (list, tuple)) else [expected]
    texts = {text_of(o).lower() for o in options if number_of(o) is None}
    numbers = {n for o in options if (n := number_of(o)) is not None}
    if not numbers:
        return lambda actual: _lowered(actual) in texts
    # A number option needs no text comparison: a value that is no number never has a number's text.
    return lambda actual: _lowered(actual) in texts or number_of(actual) in numbers


def _contains(expected: Any) -> Callable[[Any], bool]:
    needle = text_of(expected).lower()
    return lambda actual: needle in _lowered(actual)


def _regex(expected: Any) -> Callable[[Any], bool] | None:
    """None when the pattern is no string or RE2 refuses it: then it never matches, negated or not."""
    search = searcher(expected) if isinstance(expected, str) else None
    if search is None:
        return None
    return lambda actual: search(text_of(actual))


_COMPARISONS = {"eq": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _ordering(expected: Any, compare: Callable[[Any, Any], bool]) -> Callable[[Any], bool]:
    """gt / gte / lt / lte: as numbers when both sides parse as numbers, else as text."""
    right, right_text = number_of(expected), text_of(expected)
    if right is None:
        return lambda actual: compare(text_of(actual), right_text)

    def test(actual: Any) -> bool:
        left = number_of(actual)
        return compare(text_of(actual), right_text) if left is None else compare(left, right)

    return test


def _semver(expected: Any, compare: Callable[[Any, Any], bool]) -> Callable[[Any], bool] | None:
    """None when the filter's value is no version: nothing matches it."""
    right = parse_semver(text_of(expected))
    if right is None:
        return None

    def test(actual: Any) -> bool:
        left = parse_semver(text_of(actual))
        return left is not None and compare(left, right)

    return test


def compile_filter(filter: PropertyFilter) -> Check:
    op, expected = filter.operator, filter.value
    op = op if isinstance(op, str) else ""
    test: Callable[[Any], bool] | None
    if op in ("is_set", "is_not_set"):
        return filter.key, op == "is_not_set", (_always if op == "is_set" else _never)
    if op in ("exact", "in", "is_not", "not_in"):
        test = _equality(expected)
    elif op in ("icontains", "not_icontains"):
        test = _contains(expected)
    elif op in ("regex", "not_regex"):
        test = _regex(expected)
    elif op in ("gt", "gte", "lt", "lte"):
        test = _ordering(expected, _COMPARISONS[op])
    elif op.startswith("semver_") and op.removeprefix("semver_") in _COMPARISONS:
        test = _semver(expected, _COMPARISONS[op.removeprefix("semver_")])
    else:
        test = None  # unknown operator: never true
    if test is None:
        return filter.key, False, _never
    return filter.key, False, (_negated(test) if op.startswith(("is_not", "not_")) else test)


def matches(filter: PropertyFilter, properties: Mapping[str, Any]) -> bool:
    """One filter against a user's properties (compiled on the spot: flags are compiled once, in CompiledFlag)."""
    key, if_missing, test = compile_filter(filter)
    actual = properties.get(key)
    return if_missing if actual is None else test(actual)


# --- flags -----------------------------------------------------------------------------------------


class CompiledFlag:
    """A definition compiled for evaluation (see the module's docstring).

    `outcomes` holds every FlagResult the flag can give; `decide(distinct_id.encode(), properties)` answers
    the index of this user's, so callers that answer many users (for_user) can precompute per outcome.
    """

    __slots__ = ("definition", "outcomes", "decide", "_found")

    def __init__(self, definition: FlagDefinition):
        self.definition = definition
        self._found: list[FlagResult] = []  # the outcomes, while compiling
        self.decide: Callable[[bytes, Mapping[str, Any]], int] = self._compile(definition)
        self.outcomes: tuple[FlagResult, ...] = tuple(self._found)
        del self._found

    def evaluate(self, distinct_id: str, properties: Mapping[str, Any]) -> FlagResult:
        """Is the flag on for this user, with which variant and payload, and why.

        Two deliberate differences from PostHog's matcher: groups are tried in the
        order listed (PostHog moves groups that force a variant to the front), and
        a user is in when bucket < percentage (PostHog: <=), so 0% means nobody.
        """
        return self.outcomes[self.decide(distinct_id.encode(), properties)]

    def _outcome(self, result: FlagResult) -> int:
        self._found.append(result)
        return len(self._found) - 1

    def _compile(self, flag: FlagDefinition) -> Callable[[bytes, Mapping[str, Any]], int]:
        if not flag.active:
            disabled = self._outcome(FlagResult(False, None, None, "disabled", None))
            return lambda id_bytes, properties: disabled
        prefix = f"{flag.key}.".encode()
        if not flag.conditions:
            limit = hash_limit(flag.rollout_percentage / 100)
            included = self._inclusion(flag, prefix, None, "rollout", None)
            out = self._outcome(FlagResult(False, None, None, "out_of_rollout", None))

            def decide_rollout(id_bytes: bytes, properties: Mapping[str, Any]) -> int:
                if _FIRST_8_BYTES(_sha1(prefix + id_bytes).digest())[0] < limit:
                    return included(id_bytes)
                return out

            return decide_rollout

        groups = tuple(self._group(flag, prefix, index, group) for index, group in enumerate(flag.conditions))
        no_match = self._outcome(FlagResult(False, None, None, "no_condition_match", None))

        def decide_targeted(id_bytes: bytes, properties: Mapping[str, Any]) -> int:
            get = properties.get
            hashed = None  # once a group matches
            first_out_of_rollout = None
            for checks, limit, included, out in groups:
                for key, if_missing, test in checks:
                    actual = get(key)
                    if actual is None:
                        if not if_missing:
                            break
                    elif not test(actual):
                        break
                else:
                    if hashed is None:
                        hashed = _FIRST_8_BYTES(_sha1(prefix + id_bytes).digest())[0]
                    if hashed < limit:
                        return included(id_bytes)
                    if first_out_of_rollout is None:
                        first_out_of_rollout = out
            # Targeted but not rolled out to is a different story from not targeted at all.
            return no_match if first_out_of_rollout is None else first_out_of_rollout

        return decide_targeted

    def _group(
        self, flag: FlagDefinition, prefix: bytes, index: int, group: ConditionGroup
    ) -> tuple[tuple[Check, ...], int, Callable[[bytes], int], int]:
        percentage = flag.rollout_percentage if group.rollout_percentage is None else group.rollout_percentage
        checks = tuple(compile_filter(f) for f in group.properties)
        included = self._inclusion(flag, prefix, group.variant, "condition_match", index)
        out = self._outcome(FlagResult(False, None, None, "out_of_rollout", index))
        return checks, hash_limit(percentage / 100), included, out

    def _inclusion(
        self, flag: FlagDefinition, prefix: bytes, forced: str | None, reason: str, index: int | None
    ) -> Callable[[bytes], int]:
        """The outcome of a user who is in: the flag's payload, or the forced or hashed variant's."""
        if not flag.variants:
            fixed = self._outcome(FlagResult(True, None, flag.payload, reason, index))
            return lambda id_bytes: fixed
        by_key = {v.key: v for v in flag.variants}
        # An unknown forced variant can only come from an unvalidated row; fall back to hashing like PostHog.
        if isinstance(forced, str) and forced in by_key:
            chosen = by_key[forced]
            fixed = self._outcome(FlagResult(True, chosen.key, chosen.payload, reason, index))
            return lambda id_bytes: fixed
        ranges = []  # lower <= position < upper, as limits on the salted digest
        upper = 0.0
        for variant in flag.variants:
            lower, upper = upper, upper + variant.rollout_percentage / 100
            outcome = self._outcome(FlagResult(True, variant.key, variant.payload, reason, index))
            ranges.append((hash_limit(lower), hash_limit(upper), outcome))
        last = ranges[-1][2]

        def pick_variant(id_bytes: bytes) -> int:
            hashed = _FIRST_8_BYTES(_sha1(prefix + id_bytes + b"variant").digest())[0]
            for lower, upper, outcome in ranges:
                if lower <= hashed < upper:
                    return outcome
            # Only reachable when float rounding leaves the last range just short of 1.
            return last

        return pick_variant


def evaluate(flag: FlagDefinition, distinct_id: str, properties: Mapping[str, Any]) -> FlagResult:
    """One evaluation of a definition (compiled on the spot; the API evaluates the config cache's CompiledFlag)."""
    return CompiledFlag(flag).evaluate(distinct_id, properties)


# --- values ------------------------------------------------------------------------------------------


def number_of(value: Any) -> float | None:
    """A property or filter value as a number, when it is one or a string that reads as one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return None


def text_of(value: Any) -> str:
    """Property values as the strings they were written as in JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)
