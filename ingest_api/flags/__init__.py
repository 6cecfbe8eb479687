"""Feature flags: definitions (parse, validate) and a pure evaluator."""

from ingest_api.flags.definition import (
    OPERATORS,
    ConditionGroup,
    FlagDefinition,
    FlagDefinitionError,
    PropertyFilter,
    Variant,
    flag_from_row,
    parse_flag_definition,
)
from ingest_api.flags.evaluator import FlagResult, bucket, evaluate, matches

__all__ = [
    "OPERATORS",
    "ConditionGroup",
    "FlagDefinition",
    "FlagDefinitionError",
    "FlagResult",
    "PropertyFilter",
    "Variant",
    "bucket",
    "evaluate",
    "flag_from_row",
    "matches",
    "parse_flag_definition",
]
