"""What the flag endpoints (native, PostHog) read from a request's JSON: the user and their properties."""

from __future__ import annotations

from typing import Any

from eventtrack.errors import ApiError
from ingest_api.validation import MAX_ID_LENGTH, clean_string


def flag_distinct_id(data: dict[str, Any]) -> str:
    """The user flags are evaluated for: a string (or an integer) of 1 to MAX_ID_LENGTH characters."""
    value = data.get("distinct_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise ApiError.of(
            "validation_error",
            f"distinct_id is required (a string of 1 to {MAX_ID_LENGTH} characters).",
            {"distinct_id": "is required"},
        )
    return clean_string(value)


def object_field(data: dict[str, Any], name: str) -> dict[str, Any]:
    """An optional JSON object field (`properties`, `person_properties`): missing means `{}`."""
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError.of("validation_error", f"{name} must be a JSON object.", {name: "must be an object"})
    return value
