"""The flag form <-> the admin API's flag body (pure). Validation itself stays in ingest_api.flags.definition."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

JSON_FIELDS = {"variants": [], "conditions": [], "payload": None}  # empty textarea -> this value
FORM_FIELDS = ("key", "name", "description", "rollout_percentage", "variants", "conditions", "payload")


def form_to_body(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API body of a submitted form, and the problems that stop it before validation (unreadable JSON, not a number)."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {
        "key": form.get("key", "").strip(),
        "name": form.get("name", "").strip() or None,
        "description": form.get("description", ""),
        "active": form.get("active") == "on",
    }
    if body["name"] is None:
        del body["name"]  # the API then uses the key
    try:
        body["rollout_percentage"] = float(form.get("rollout_percentage", ""))
    except ValueError:
        errors["rollout_percentage"] = "must be a number from 0 to 100"
    for name, empty in JSON_FIELDS.items():
        text = form.get(name, "").strip()
        if not text:
            body[name] = empty
            continue
        try:
            body[name] = json.loads(text)
        except ValueError as exc:
            errors[name] = f"not valid JSON: {exc}"
    return body, errors


def flag_to_form(flag: Mapping[str, Any]) -> dict[str, str]:
    """A stored flag (API form) as the form's field values."""

    def pretty(value: Any, empty: Any) -> str:
        return "" if value == empty else json.dumps(value, indent=2, ensure_ascii=False)

    rollout = flag.get("rollout_percentage", 0)
    return {
        "key": flag.get("key", ""),
        "name": flag.get("name", ""),
        "description": flag.get("description", ""),
        "active": "on" if flag.get("active", True) else "",
        "rollout_percentage": f"{rollout:g}",
        **{name: pretty(flag.get(name, empty), empty) for name, empty in JSON_FIELDS.items()},
    }


_TOP = re.compile(r"[A-Za-z_]+")


def errors_by_field(fields: Mapping[str, str]) -> dict[str, list[str]]:
    """The API's error paths (`variants[1].rollout_percentage`) grouped under the form field they belong to."""
    grouped: dict[str, list[str]] = {}
    for path, message in fields.items():
        match = _TOP.match(path)
        top = match.group(0) if match and match.group(0) in FORM_FIELDS + ("active",) else "form"
        grouped.setdefault(top, []).append(message if path == top else f"{path}: {message}")
    return grouped
