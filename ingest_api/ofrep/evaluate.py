"""Native flag results → OFREP evaluation results (pure).

Mapping (docs/integration_guide.md), against open-feature/protocol's service/openapi.yaml:
- value: always present, and of one type per flag, because OFREP requests carry
  no type and OpenFeature clients refuse a value whose type differs from their
  default's (`@openfeature/ofrep-provider` also refuses an answer without one):
  a flag with payloads answers its payload (the flag's own, or for a
  multivariate flag the variant's); a multivariate flag without payloads
  answers the variant key; other flags answer true / false. Whoever is off
  (or gets a variant without a payload) gets that type's empty value: false,
  "", 0, {}. An array payload, which is no OFREP value type, is answered
  wrapped as {"items": [...]} (empty: {"items": []}).
- variant: the variant key, or "on" / "off", or "disabled" for disabled flags.
- reason (the schema allows STATIC, TARGETING_MATCH, SPLIT, DISABLED, UNKNOWN):
  DISABLED (flag inactive); TARGETING_MATCH (the targeting decided: a condition
  group matched or forced the variant, or no group matched and the flag is
  off); SPLIT (a percentage rollout or variant split decided); STATIC (no
  conditions, rolled out to 100 %, no variants).
- metadata: flagId, version, and conditionIndex when a group was involved.
"""

from __future__ import annotations

from typing import Any

from eventtrack.errors import CATALOGUE
from ingest_api.config_cache import CachedFlag
from ingest_api.flags.definition import FlagDefinition
from ingest_api.flags.evaluator import FlagResult


class OfrepError(Exception):
    """An OFREP error: its code (errors.CATALOGUE, which gives the status) and `errorDetails`."""

    def __init__(self, code: str, details: str | None = None):
        kind = CATALOGUE[code]
        self.status, self.code, self.details = kind.status, code, kind.detail if details is None else details
        super().__init__(self.details)


def read_context(body: Any) -> tuple[str | None, dict[str, Any]]:
    """(targetingKey, attributes) of a request body `{"context": {...}}`; raises OfrepError(INVALID_CONTEXT)."""
    if body is None:
        return None, {}
    if not isinstance(body, dict):
        raise OfrepError("INVALID_CONTEXT")
    context = body.get("context")
    if context is None:
        return None, {}
    if not isinstance(context, dict):
        raise OfrepError("INVALID_CONTEXT", "`context` must be a JSON object.")
    key = context.get("targetingKey")
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        key = str(key)
    if key is not None and (not isinstance(key, str) or len(key) > 200):
        raise OfrepError("INVALID_CONTEXT", "`targetingKey` must be a string of at most 200 characters.")
    attributes = {k: v for k, v in context.items() if k != "targetingKey"}
    return key or None, attributes


def _reason(flag: CachedFlag, result: FlagResult) -> str:
    definition = flag.definition
    if result.reason == "disabled":
        return "DISABLED"
    if result.reason == "no_condition_match":
        return "TARGETING_MATCH"  # OFREP has no DEFAULT: the off answer came from the targeting rules
    if result.reason == "condition_match":
        forced = definition.conditions[result.condition_index].variant if result.condition_index is not None else None
        return "SPLIT" if definition.variants and not forced else "TARGETING_MATCH"
    if result.reason == "rollout" and definition.rollout_percentage >= 100 and not definition.variants:
        return "STATIC"
    return "SPLIT"  # rollout / out_of_rollout: decided by the percentage


def _value(definition: FlagDefinition, result: FlagResult) -> Any:
    # The payloads the evaluator can answer: a multivariate flag's come from its variants.
    payloads = [v.payload for v in definition.variants] if definition.variants else [definition.payload]
    example = next((p for p in payloads if p is not None), None)
    if example is None:
        if definition.variants:
            return result.variant if result.active else ""
        return result.active
    # Off, or a variant without a payload: the empty value of the flag's type (False "" 0 0.0 {} []).
    payload = result.payload if result.active and result.payload is not None else type(example)()
    return {"items": payload} if isinstance(payload, list) else payload


def evaluation(flag: CachedFlag, result: FlagResult) -> dict[str, Any]:
    variant = "disabled" if result.reason == "disabled" else result.variant or ("on" if result.active else "off")
    metadata: dict[str, Any] = {"flagId": flag.data["id"], "version": flag.data["version"]}
    if result.condition_index is not None:
        metadata["conditionIndex"] = result.condition_index
    return {
        "key": flag.data["key"],
        "reason": _reason(flag, result),
        "value": _value(flag.definition, result),
        "variant": variant,
        "metadata": metadata,
    }


def evaluate_flag(flag: CachedFlag, targeting_key: str | None, attributes: dict[str, Any]) -> dict[str, Any]:
    if not flag.data["active"]:
        return evaluation(flag, FlagResult(False, None, None, "disabled", None))
    if targeting_key is None:
        raise OfrepError("TARGETING_KEY_MISSING")
    return evaluation(flag, flag.compiled.evaluate(targeting_key, attributes))
