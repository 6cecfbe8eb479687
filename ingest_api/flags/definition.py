"""Feature flag definitions: the typed model the evaluator reads, and the
validator for the JSON bodies of the admin create/update endpoints.

Pure: no I/O. Uniqueness of `key` across flags is the database's job.

Choices worth knowing:
- `rollout_percentage` defaults to 0, so a flag created without one reaches
  nobody until someone states a percentage (a group whose own percentage is
  null falls back to the flag's, so it reaches nobody either).
- Semver values ignore pre-release and build suffixes: "1.2.3-beta+7" is 1.2.3.
  Most app-version targeting wants "this build and later", and a beta of 2.0.0
  belongs to 2.0.0's audience.
- Unknown fields are refused at every level (body, variant, group, filter), so
  a typo never silently turns into a default.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest_api.flags.pattern import pattern_problem

OPERATORS: frozenset[str] = frozenset(
    {
        "exact",
        "is_not",
        "in",
        "not_in",
        "icontains",
        "not_icontains",
        "regex",
        "not_regex",
        "gt",
        "gte",
        "lt",
        "lte",
        "is_set",
        "is_not_set",
        "semver_eq",
        "semver_gt",
        "semver_gte",
        "semver_lt",
        "semver_lte",
    }
)

# A flag's (and a variant's) key: a slug of at most MAX_KEY_LENGTH characters.
KEY_PATTERN = "[a-z0-9][a-z0-9_-]*"
MAX_KEY_LENGTH = 200
MAX_NAME_LENGTH = 400
_SLUG = re.compile(KEY_PATTERN)
_SEMVER = re.compile(r"[vV]?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+].*)?", re.DOTALL)
_EDITABLE = ("key", "name", "description", "active", "rollout_percentage", "variants", "conditions", "payload")
_VARIANT_FIELDS = frozenset({"key", "rollout_percentage", "payload"})
_GROUP_FIELDS = frozenset({"properties", "rollout_percentage", "variant"})
_FILTER_FIELDS = frozenset({"key", "operator", "value"})


@dataclass(frozen=True)
class PropertyFilter:
    key: str
    operator: str
    value: Any


@dataclass(frozen=True)
class ConditionGroup:
    properties: tuple[PropertyFilter, ...]
    rollout_percentage: float | None
    variant: str | None


@dataclass(frozen=True)
class Variant:
    key: str
    rollout_percentage: float
    payload: Any = None


@dataclass(frozen=True)
class FlagDefinition:
    key: str
    active: bool
    rollout_percentage: float
    variants: tuple[Variant, ...] = ()
    conditions: tuple[ConditionGroup, ...] = ()
    payload: Any = None


class FlagDefinitionError(Exception):
    """Every problem found in a definition, as field path -> message."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{path}: {message}" for path, message in fields.items()))
        self.fields = fields


@functools.lru_cache(maxsize=4096)  # app versions repeat across requests: parse each once
def parse_semver(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of "v1.2.3-rc.1+build", missing parts as 0; None if not a version."""
    match = _SEMVER.fullmatch(text.strip())
    if match is None:
        return None
    return tuple(int(part or 0) for part in match.groups())  # type: ignore[return-value]


def flag_from_row(row: Mapping[str, Any]) -> FlagDefinition:
    """Build the evaluator's model from a stored, already-validated dict."""
    return FlagDefinition(
        key=row["key"],
        active=bool(row.get("active", True)),
        rollout_percentage=float(row.get("rollout_percentage") or 0),
        variants=tuple(
            Variant(v["key"], float(v["rollout_percentage"]), v.get("payload")) for v in row.get("variants") or ()
        ),
        conditions=tuple(
            ConditionGroup(
                properties=tuple(
                    PropertyFilter(f["key"], f["operator"], f.get("value")) for f in g.get("properties") or ()
                ),
                rollout_percentage=None if g.get("rollout_percentage") is None else float(g["rollout_percentage"]),
                variant=g.get("variant"),
            )
            for g in row.get("conditions") or ()
        ),
        payload=row.get("payload"),
    )


def parse_flag_definition(data: Mapping[str, Any], *, partial_of: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate an admin create (or, with `partial_of`, PATCH) body; return the normalized editable fields.

    For a PATCH the body is merged over the stored flag first and the result is
    validated whole, so a change that breaks another field (say, dropping the
    variant a group forces) is caught. Raises FlagDefinitionError with all errors.
    """
    if not isinstance(data, Mapping):
        raise FlagDefinitionError({"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    for field in data:
        if field not in _EDITABLE:
            errors[str(field)] = "unknown field"

    merged = {k: partial_of[k] for k in _EDITABLE if partial_of is not None and k in partial_of}
    merged.update((k, v) for k, v in data.items() if k in _EDITABLE)

    key = merged.get("key")
    if not _is_slug(key):
        errors["key"] = (
            f"required: 1-{MAX_KEY_LENGTH} lowercase letters, digits, '_' or '-', starting with a letter or digit"
        )

    name = merged.get("name")
    if name is None:
        name = key
    elif not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        errors["name"] = f"must be a non-empty string of at most {MAX_NAME_LENGTH} characters"

    description = merged.get("description")
    if description is None:
        description = ""
    elif not isinstance(description, str):
        errors["description"] = "must be a string"

    active = merged.get("active", True)
    if not isinstance(active, bool):
        errors["active"] = "must be true or false"

    rollout = merged.get("rollout_percentage", 0)
    if not _is_percentage(rollout):
        errors["rollout_percentage"] = "must be a number from 0 to 100"

    variants = _check_variants(merged.get("variants"), errors)
    variant_keys = {v["key"] for v in variants if isinstance(v.get("key"), str)}
    conditions = _check_conditions(merged.get("conditions"), variant_keys, errors)
    stored = {"name": name, "description": description, "variants": variants, "conditions": conditions}
    for field, value in {**stored, "payload": merged.get("payload")}.items():
        if field not in errors and _holds_nul(value):
            errors[field] = "must not hold the NUL character (\\u0000): Postgres text and jsonb cannot store it"

    if errors:
        raise FlagDefinitionError(errors)
    return {
        "key": key,
        "name": name,
        "description": description,
        "active": active,
        "rollout_percentage": rollout,
        "variants": variants,
        "conditions": conditions,
        "payload": merged.get("payload"),
    }


def _holds_nul(value: Any) -> bool:
    """Whether a string anywhere in `value` (a JSON body's part: keys too) holds NUL. A loop, not recursion: a
    body is nested as deep as its client likes."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def _is_slug(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_KEY_LENGTH and _SLUG.fullmatch(value) is not None


def _is_number(value: Any) -> bool:
    # JSON true/false are ints in Python; "50" is a string. Neither is a percentage.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_percentage(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= 100


def _optional_list(raw: Any, path: str, errors: dict[str, str]) -> list[Any]:
    """A list field that may be left out (then empty); anything else is an error and reads as empty."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors[path] = "must be a list"
        return []
    return raw


def _is_object(item: Any, allowed: frozenset[str], path: str, errors: dict[str, str]) -> bool:
    """Whether a list item is an object (else an error); its fields outside `allowed` are errors too."""
    if not isinstance(item, Mapping):
        errors[path] = "must be an object"
        return False
    for field in item:
        if field not in allowed:
            errors[f"{path}.{field}"] = "unknown field"
    return True


def _check_variants(raw: Any, errors: dict[str, str]) -> list[dict[str, Any]]:
    variants: list[dict[str, Any]] = []
    seen: set[str] = set()
    weights_ok = True
    for i, item in enumerate(_optional_list(raw, "variants", errors)):
        path = f"variants[{i}]"
        if not _is_object(item, _VARIANT_FIELDS, path, errors):
            weights_ok = False
            continue
        key = item.get("key")
        if not _is_slug(key):
            errors[f"{path}.key"] = "required: a slug of lowercase letters, digits, '_' or '-'"
        elif key in seen:
            errors[f"{path}.key"] = f"duplicate variant key '{key}'"
        else:
            seen.add(key)
        weight = item.get("rollout_percentage")
        if not _is_percentage(weight):
            errors[f"{path}.rollout_percentage"] = "must be a number from 0 to 100"
            weights_ok = False
        variants.append({"key": key, "rollout_percentage": weight, "payload": item.get("payload")})
    # Only judge the sum when every weight is a number; otherwise the per-variant error says it.
    if variants and weights_ok:
        total = math.fsum(v["rollout_percentage"] for v in variants)
        if abs(total - 100) > 1e-9:
            errors["variants"] = f"rollout percentages must sum to 100 (got {total:g})"
    return variants


def _check_conditions(raw: Any, variant_keys: set[str], errors: dict[str, str]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for i, item in enumerate(_optional_list(raw, "conditions", errors)):
        path = f"conditions[{i}]"
        if not _is_object(item, _GROUP_FIELDS, path, errors):
            continue
        properties = _optional_list(item.get("properties"), f"{path}.properties", errors)
        filters = [_check_filter(f, f"{path}.properties[{j}]", errors) for j, f in enumerate(properties)]
        rollout = item.get("rollout_percentage")
        if rollout is not None and not _is_percentage(rollout):
            errors[f"{path}.rollout_percentage"] = "must be null or a number from 0 to 100"
        variant = item.get("variant")
        if variant is not None and (not isinstance(variant, str) or variant not in variant_keys):
            errors[f"{path}.variant"] = f"unknown variant {variant!r}: must be one of the flag's variant keys"
        groups.append({"properties": filters, "rollout_percentage": rollout, "variant": variant})
    return groups


def _check_filter(item: Any, path: str, errors: dict[str, str]) -> dict[str, Any]:
    if not _is_object(item, _FILTER_FIELDS, path, errors):
        return {}
    key, operator, value = item.get("key"), item.get("operator"), item.get("value")
    if not isinstance(key, str) or not key:
        errors[f"{path}.key"] = "required: a property name"
    if not isinstance(operator, str) or operator not in OPERATORS:
        errors[f"{path}.operator"] = f"unknown operator {str(operator)[:50]!r}"
        return {"key": key, "operator": operator, "value": value}
    if operator in ("is_set", "is_not_set"):
        value = None  # these operators take no value; drop whatever was sent
    else:
        problem = _value_problem(operator, value)
        if problem:
            errors[f"{path}.value"] = problem
    return {"key": key, "operator": operator, "value": value}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or _is_number(value)


def _value_problem(operator: str, value: Any) -> str | None:
    """Why `value` cannot be used with `operator`, or None when it can."""
    if operator in ("in", "not_in") or (operator in ("exact", "is_not") and isinstance(value, list)):
        if not isinstance(value, list) or not value or not all(_is_scalar(v) for v in value):
            return "must be a non-empty list of strings, numbers or booleans"
        return None
    if operator in ("exact", "is_not"):
        return None if _is_scalar(value) else "must be a string, number, boolean or a list of them"
    if operator in ("icontains", "not_icontains"):
        return None if isinstance(value, str) or _is_number(value) else "must be a string or a number"
    if operator in ("regex", "not_regex"):
        return pattern_problem(value) if isinstance(value, str) else "must be a regular expression string (RE2 syntax)"
    if operator in ("gt", "gte", "lt", "lte"):
        return None if (isinstance(value, str) and value) or _is_number(value) else "must be a number or a string"
    # semver_*
    if not isinstance(value, str) or parse_semver(value) is None:
        return "must be a version string like '1.2.3'"
    return None
