"""PostHog-compatible flag responses (pure): `/flags?v=2` records and `/decide?v=3` maps.

Flags are evaluated by the native evaluator (ingest_api/flags/evaluator.py)
against the request's `person_properties`. As in PostHog, inactive flags are
left out of the answer. Payloads are JSON-encoded strings, which is what the
SDKs expect (they decode them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from ingest_api.config_cache import CachedFlag
from ingest_api.flags.evaluator import FlagResult

# What remote-config-reading mobile SDKs look for; every optional product is off.
_REMOTE_CONFIG = {
    "sessionRecording": False,
    "surveys": False,
    "heatmaps": False,
    "capturePerformance": False,
    "autocaptureExceptions": False,
    "siteApps": [],
    "supportedCompression": ["gzip", "gzip-js"],
}


def wants_detailed(path_kind: str, version: str | None) -> bool:
    """`/flags` (v2 and later, or no version) and `/decide?v=4` answer per-flag records; older versions the two maps."""
    try:
        v = int(version) if version else None
    except ValueError:
        v = None
    if path_kind == "flags":
        return v is None or v >= 2
    return v is not None and v >= 4


def _reason(result: FlagResult, has_conditions: bool) -> dict[str, Any]:
    index = result.condition_index if result.condition_index is not None else (None if has_conditions else 0)
    if result.reason in ("condition_match", "rollout"):
        return {
            "code": "condition_match",
            "condition_index": index,
            "description": f"Matched condition set {(index or 0) + 1}",
        }
    if result.reason == "out_of_rollout":
        return {"code": "out_of_rollout_bound", "condition_index": index, "description": "Out of rollout bound"}
    return {"code": "no_condition_match", "condition_index": None, "description": "No matching condition set"}


def _payload(result: FlagResult) -> str | None:
    if not result.active or result.payload is None:
        return None
    return orjson.dumps(result.payload).decode()


def evaluate_all(
    flags: Iterable[CachedFlag], distinct_id: str, properties: dict[str, Any], only: set[str] | None
) -> list[tuple[CachedFlag, FlagResult]]:
    return [
        (flag, flag.compiled.evaluate(distinct_id, properties))
        for flag in flags
        if flag.data["active"] and (only is None or flag.data["key"] in only)
    ]


def flags_response(results: list[tuple[CachedFlag, FlagResult]], detailed: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"errorsWhileComputingFlags": False, "requestId": str(uuid.uuid4()), **_REMOTE_CONFIG}
    if detailed:
        answer["flags"] = {
            flag.data["key"]: {
                "key": flag.data["key"],
                "enabled": result.active,
                "variant": result.variant,
                "reason": _reason(result, bool(flag.definition.conditions)),
                "metadata": {
                    "id": flag.data["id"],
                    "version": flag.data["version"],
                    "payload": _payload(result),
                    "description": flag.data["description"],
                },
            }
            for flag, result in results
        }
    else:
        answer["featureFlags"] = {flag.data["key"]: (result.variant or result.active) for flag, result in results}
        answer["featureFlagPayloads"] = {
            flag.data["key"]: p for flag, result in results if (p := _payload(result)) is not None
        }
    return answer
