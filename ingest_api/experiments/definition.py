"""Experiment definitions: validation of the admin create/update bodies (pure: no I/O).

The route looks up the flag named by `flag_key` and passes it in (or None when
there is no such flag); everything else is judged here.

Choices worth knowing:
- The variants of a multivariate flag are its variant keys. A boolean flag has
  the two variants "true" and "false" (what `$feature_flag_response` holds), and
  its control is "false"; "control" is accepted as a synonym and stored as "false".
- The expected split (for the sample-ratio check) is copied from the flag when
  the experiment is saved: a multivariate flag's variant percentages; for a
  boolean flag, the rollout percentage for "true" and the rest for "false".
- A conversion window is half-open [start_at, end_at) and both ends are required.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from eventtrack.clock import InvalidTimestamp, parse_timestamp

EDITABLE = (
    "name",
    "description",
    "flag_key",
    "control_variant",
    "goal_event",
    "secondary_events",
    "start_at",
    "end_at",
)
MAX_SECONDARY = 10
MAX_NAME_LENGTH = 400
MAX_EVENT_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
BOOLEAN_CONTROL = "false"


class ExperimentDefinitionError(Exception):
    """Every problem found in a definition, as field -> message."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def merged_body(data: Any, partial_of: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The editable fields of a body, over the stored experiment for a PATCH. Raises on a non-object body."""
    if not isinstance(data, Mapping):
        raise ExperimentDefinitionError({"body": "must be a JSON object"})
    merged = {k: partial_of[k] for k in EDITABLE if partial_of is not None and k in partial_of}
    merged.update((k, v) for k, v in data.items() if k in EDITABLE)
    return merged


def flag_variants(flag: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[{key, expected_percentage}] of a stored flag: its variants, or true/false for a boolean flag."""
    variants = flag.get("variants") or []
    if variants:
        return [{"key": v["key"], "expected_percentage": float(v["rollout_percentage"])} for v in variants]
    rollout = float(flag.get("rollout_percentage") or 0)
    return [{"key": "true", "expected_percentage": rollout}, {"key": "false", "expected_percentage": 100.0 - rollout}]


def is_text(value: Any) -> bool:
    """A string Postgres can store: no NUL character, no lone surrogate."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _event_name(value: Any) -> bool:
    return is_text(value) and 0 < len(value) <= MAX_EVENT_LENGTH and value.strip() != ""


def parse_experiment(
    data: Any, flag: Mapping[str, Any] | None, *, partial_of: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validates a create (or, with `partial_of`, PATCH) body; returns the columns to store.

    `flag` is the stored flag named by the merged body's `flag_key`, or None if
    there is none. Raises ExperimentDefinitionError with every error found.
    """
    merged = merged_body(data, partial_of)
    errors: dict[str, str] = {str(k): "unknown field" for k in data if k not in EDITABLE}

    name = merged.get("name")
    if not is_text(name) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        errors["name"] = f"required: a non-empty string of at most {MAX_NAME_LENGTH} characters"
    description = merged.get("description")
    if description is None:
        description = ""
    elif not is_text(description) or len(description) > MAX_DESCRIPTION_LENGTH:
        errors["description"] = f"must be a string of at most {MAX_DESCRIPTION_LENGTH} characters"

    flag_key = merged.get("flag_key")
    variants: list[dict[str, Any]] = []
    if not is_text(flag_key) or not flag_key:
        errors["flag_key"] = "required: the key of an existing feature flag"
    elif flag is None:
        errors["flag_key"] = f"no feature flag has the key '{flag_key[:200]}'"
    else:
        variants = flag_variants(flag)

    control = merged.get("control_variant")
    if control is not None and not is_text(control):
        control = ""  # reported below as not one of the variants
    keys = [v["key"] for v in variants]
    boolean = keys == ["true", "false"] and not (flag or {}).get("variants")
    if boolean and control in (None, "control"):
        control = BOOLEAN_CONTROL
    if variants:
        if control is None and "control" in keys:
            control = "control"
        if not isinstance(control, str) or control not in keys:
            errors["control_variant"] = "must be one of the flag's variants: " + ", ".join(keys)
        elif next(v for v in variants if v["key"] == control)["expected_percentage"] <= 0:
            errors["control_variant"] = "the control variant must have a rollout percentage above 0"
        if sum(1 for v in variants if v["expected_percentage"] > 0) < 2:
            errors["flag_key"] = "the flag must split users into at least two variants with a rollout above 0"

    goal = merged.get("goal_event")
    if not _event_name(goal):
        errors["goal_event"] = f"required: an event name of 1 to {MAX_EVENT_LENGTH} characters"
    elif goal == "$feature_flag_called":
        errors["goal_event"] = "the exposure event cannot be the goal"

    secondary = merged.get("secondary_events")
    if secondary is None:
        secondary = []
    elif not isinstance(secondary, list) or len(secondary) > MAX_SECONDARY:
        errors["secondary_events"] = f"must be a list of at most {MAX_SECONDARY} event names"
    else:
        for i, item in enumerate(secondary):
            if not _event_name(item):
                errors[f"secondary_events[{i}]"] = f"must be an event name of 1 to {MAX_EVENT_LENGTH} characters"
            elif item == goal or secondary.index(item) != i:
                errors[f"secondary_events[{i}]"] = "repeats the goal or another secondary event"

    times: dict[str, datetime] = {}
    for field in ("start_at", "end_at"):
        value = merged.get(field)
        if isinstance(value, datetime):  # a stored experiment, merged for a PATCH
            times[field] = value
            continue
        try:
            times[field] = parse_timestamp(value)
        except InvalidTimestamp as exc:
            errors[field] = f"required: an ISO 8601 date-time ({exc})"
    if len(times) == 2 and not times["start_at"] < times["end_at"]:
        errors["end_at"] = "must be after start_at"

    if errors:
        raise ExperimentDefinitionError(errors)
    return {
        "name": name,
        "description": description,
        "flag_key": flag_key,
        "control_variant": control,
        "goal_event": goal,
        "secondary_events": secondary,
        "variants": variants,
        "start_at": times["start_at"],
        "end_at": times["end_at"],
    }
