"""OpenAPI paths of the OFREP endpoints (merged into ingest_api/openapi.py)."""

from __future__ import annotations

from typing import Any

_REQUEST = {
    "type": "object",
    "properties": {
        "context": {
            "type": "object",
            "properties": {"targetingKey": {"type": "string", "maxLength": 200}},
            "additionalProperties": True,
        }
    },
}
_EVALUATION = {
    "type": "object",
    "required": ["key", "reason", "variant", "value"],
    "properties": {
        "key": {"type": "string"},
        # OFREP's value types; an array payload is answered as {"items": [...]} (ingest_api/ofrep/evaluate.py).
        "value": {"type": ["boolean", "string", "number", "object"]},
        "reason": {"type": "string", "enum": ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"]},
        "variant": {"type": "string"},
        "metadata": {"type": "object"},
    },
}
_FAILURE = {
    "type": "object",
    "required": ["errorCode"],
    "properties": {
        "key": {"type": "string"},
        "errorCode": {
            "type": "string",
            "enum": ["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL", "FLAG_NOT_FOUND"],
        },
        "errorDetails": {"type": "string"},
    },
}
SCHEMAS = {
    "OfrepRequest": _REQUEST,
    "OfrepEvaluation": _EVALUATION,
    "OfrepBulk": {
        "type": "object",
        "properties": {"flags": {"type": "array", "items": {"$ref": "#/components/schemas/OfrepEvaluation"}}},
    },
    "OfrepFailure": _FAILURE,
}


def _content(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ref}}}


_ERR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_COMMON = {
    "400": {
        "description": "PARSE_ERROR, INVALID_CONTEXT or TARGETING_KEY_MISSING.",
        "content": _content("#/components/schemas/OfrepFailure"),
    },
    "401": {"description": "`invalid_api_key`: write keys exist and the request carries no active one.", **_ERR},
    "413": {"description": "Body over 64 KiB.", **_ERR},
    "503": {
        "description": "Flags not loaded yet; retry.",
        **_ERR,
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}


def paths() -> dict[str, Any]:
    body = {"required": False, "content": _content("#/components/schemas/OfrepRequest")}
    return {
        "/ofrep/v1/evaluate/flags/{key}": {
            "post": {
                "operationId": "ofrepEvaluateFlag",
                "summary": "OFREP: evaluate one flag",
                "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": body,
                "responses": {
                    "200": {"description": "Evaluated.", "content": _content("#/components/schemas/OfrepEvaluation")},
                    "404": {"description": "FLAG_NOT_FOUND.", "content": _content("#/components/schemas/OfrepFailure")},
                    **_COMMON,
                },
            }
        },
        "/ofrep/v1/evaluate/flags": {
            "post": {
                "operationId": "ofrepEvaluateFlags",
                "summary": "OFREP: evaluate every flag (ETag / If-None-Match)",
                "parameters": [
                    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
                ],
                "requestBody": body,
                "responses": {
                    "200": {
                        "description": "Every flag, evaluated; with an ETag.",
                        "content": _content("#/components/schemas/OfrepBulk"),
                    },
                    "304": {"description": "Not modified."},
                    **_COMMON,
                },
            }
        },
    }
