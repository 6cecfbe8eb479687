"""The OFREP bodies and operations, declared (the OpenAPI document is generated from them).

Names and values are the OpenFeature Remote Evaluation Protocol's (open-feature/protocol service/openapi.yaml).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ingest_api.declarations import ETAG, Operation, Response, path
from ingest_api.validation import MAX_ID_LENGTH


class OfrepContext(msgspec.Struct, kw_only=True):
    targetingKey: Annotated[str, Meta(max_length=MAX_ID_LENGTH)] | None = None


class OfrepRequest(msgspec.Struct, kw_only=True):
    context: OfrepContext | None = None


class OfrepEvaluation(msgspec.Struct, kw_only=True):
    key: str
    # OFREP's value types; an array payload is answered as {"items": [...]} (ofrep/evaluate.py).
    value: bool | str | float | dict[str, Any]
    reason: Literal["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"]
    variant: str
    metadata: dict[str, Any] | None = None


class OfrepBulk(msgspec.Struct):
    flags: list[OfrepEvaluation]


class OfrepFailure(msgspec.Struct, kw_only=True):
    errorCode: Literal["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL", "FLAG_NOT_FOUND"]
    key: str | None = None
    errorDetails: str | None = None


_FAILURES = ("PARSE_ERROR", "INVALID_CONTEXT", "TARGETING_KEY_MISSING")
_ERRORS = ("invalid_api_key", "payload_too_large", "service_unavailable")
_NOTES = {503: "Flags not loaded yet; retry after `Retry-After` seconds."}

OPERATIONS = (
    Operation(
        "post",
        "/ofrep/v1/evaluate/flags/{key}",
        "ofrepEvaluateFlag",
        "OFREP: evaluate one flag",
        (Response(200, "Evaluated.", OfrepEvaluation),),
        errors=_ERRORS,
        failures=(*_FAILURES, "FLAG_NOT_FOUND"),
        failure_type=OfrepFailure,
        request=OfrepRequest,
        request_required=False,
        params=(path("key"),),
        notes=_NOTES,
    ),
    Operation(
        "post",
        "/ofrep/v1/evaluate/flags",
        "ofrepEvaluateFlags",
        "OFREP: evaluate every flag (ETag / If-None-Match)",
        (Response(200, "Every flag, evaluated; with an ETag.", OfrepBulk), Response(304, "Not modified.")),
        errors=_ERRORS,
        failures=_FAILURES,
        failure_type=OfrepFailure,
        request=OfrepRequest,
        request_required=False,
        params=(ETAG,),
        notes=_NOTES,
    ),
)
