"""Native flag results → OFREP evaluation results (pure).

Mapping (docs/integration_guide.md):
- value: the flag's payload when it is on and has one (ask for an object flag);
  otherwise the variant key for a multivariate flag that is on; otherwise a
  boolean (on / off). A multivariate flag that is off, and any disabled flag,
  carry no `value`: OpenFeature clients then use the default from the code
  (OFREP's rule for "no value").
- variant: always present: the variant key, or "on" / "off" for boolean flags,
  "disabled" for disabled flags.
- reason: DISABLED (flag inactive); TARGETING_MATCH (a condition group
  matched, or forced the variant); SPLIT (the outcome came from a percentage
  rollout or variant split); STATIC (no conditions, rolled out to 100 %, no
  variants); DEFAULT (no condition group matched).
- metadata: flagId, version, and conditionIndex when a group was involved.
"""

from __future__ import annotations

from typing import Any

from ingest_api.config_cache import CachedFlag
from ingest_api.flags.evaluator import FlagResult, evaluate


class OfrepError(Exception):
    def __init__(self, status: int, code: str, details: str):
        super().__init__(details)
        self.status, self.code, self.details = status, code, details


def read_context(body: Any) -> tuple[str | None, dict[str, Any]]:
    """(targetingKey, attributes) of a request body `{"context": {...}}`; raises OfrepError(INVALID_CONTEXT)."""
    if body is None:
        return None, {}
    if not isinstance(body, dict):
        raise OfrepError(400, "INVALID_CONTEXT", "The body must be a JSON object with a `context` object.")
    context = body.get("context")
    if context is None:
        return None, {}
    if not isinstance(context, dict):
        raise OfrepError(400, "INVALID_CONTEXT", "`context` must be a JSON object.")
    key = context.get("targetingKey")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        key = str(key)
    if key is not None and (not isinstance(key, str) or len(key) > 200):
        raise OfrepError(400, "INVALID_CONTEXT", "`targetingKey` must be a string of at most 200 characters.")
    attributes = {k: v for k, v in context.items() if k != "targetingKey"}
    return key or None, attributes


def _reason(flag: CachedFlag, result: FlagResult) -> str:
    definition = flag.definition
    if result.reason == "disabled":
        return "DISABLED"
    if result.reason == "no_condition_match":
        return "DEFAULT"
    if result.reason == "condition_match":
        forced = definition.conditions[result.condition_index].variant if result.condition_index is not None else None
        return "SPLIT" if definition.variants and not forced else "TARGETING_MATCH"
    if result.reason == "rollout" and definition.rollout_percentage >= 100 and not definition.variants:
        return "STATIC"
    return "SPLIT"  # rollout / out_of_rollout: decided by the percentage


def evaluation(flag: CachedFlag, result: FlagResult) -> dict[str, Any]:
    definition = flag.definition
    answer: dict[str, Any] = {"key": flag.data["key"], "reason": _reason(flag, result)}
    if result.reason == "disabled":
        answer["variant"] = "disabled"
    elif result.active and result.payload is not None:
        answer["value"] = result.payload
        answer["variant"] = result.variant or "on"
    elif definition.variants:
        answer["variant"] = result.variant or "off"
        if result.active:
            answer["value"] = result.variant
    else:
        answer["value"] = result.active
        answer["variant"] = "on" if result.active else "off"
    metadata: dict[str, Any] = {"flagId": flag.data["id"], "version": flag.data["version"]}
    if result.condition_index is not None:
        metadata["conditionIndex"] = result.condition_index
    answer["metadata"] = metadata
    return answer


def evaluate_flag(flag: CachedFlag, targeting_key: str | None, attributes: dict[str, Any]) -> dict[str, Any]:
    if not flag.data["active"]:
        return evaluation(flag, FlagResult(False, None, None, "disabled", None))
    if targeting_key is None:
        raise OfrepError(400, "TARGETING_KEY_MISSING", "The context needs a `targetingKey` (the user's distinct_id).")
    return evaluation(flag, evaluate(flag.definition, targeting_key, attributes))
