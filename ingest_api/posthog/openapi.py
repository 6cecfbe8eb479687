"""OpenAPI paths of the PostHog-compatible endpoints (merged into ingest_api/openapi.py)."""

from __future__ import annotations

from typing import Any

from ingest_api.posthog.routes import CAPTURE_PATHS


def _err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_RETRY = {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}
_ERRORS = {
    "400": _err("Invalid body (native error codes, see docs/troubleshooting.md)."),
    "401": _err("`invalid_api_key`: write keys exist and the request carries no active one."),
    "413": _err("Body or event over the size limit."),
    "415": _err("Unsupported Content-Type, Content-Encoding or `compression`."),
    "503": {**_err("Database unavailable; retry after `Retry-After` seconds."), **_RETRY},
}
_COMPRESSION = {
    "name": "compression",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["gzip", "gzip-js", "base64"]},
    "description": "How the body is encoded (gzip is also detected by its magic bytes).",
}
_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "distinct_id": {"type": ["string", "integer"]},
        "$distinct_id": {"type": ["string", "integer"]},
        "properties": {"type": "object", "additionalProperties": True},
        "timestamp": {"type": ["string", "null"], "format": "date-time"},
        "uuid": {"type": ["string", "null"], "format": "uuid"},
        "offset": {"type": "integer", "description": "Milliseconds before the request was sent; wins over timestamp."},
        "$set": {"type": "object"},
        "$set_once": {"type": "object"},
    },
}
SCHEMAS = {
    "PosthogEvent": _EVENT,
    "PosthogCapture": {
        "oneOf": [
            {
                "type": "object",
                "required": ["batch"],
                "properties": {
                    "api_key": {"type": "string"},
                    "token": {"type": "string"},
                    "batch": {"type": "array", "items": {"$ref": "#/components/schemas/PosthogEvent"}},
                    "sent_at": {"type": ["string", "null"], "format": "date-time"},
                    "historical_migration": {"type": "boolean"},
                },
            },
            {"type": "array", "items": {"$ref": "#/components/schemas/PosthogEvent"}},
            {"$ref": "#/components/schemas/PosthogEvent"},
        ]
    },
}


def capture_paths() -> dict[str, Any]:
    return {
        path: {
            "post": {
                "operationId": "posthogCapture" + "".join(part.capitalize() for part in path.strip("/").split("/")),
                "summary": "PostHog-compatible capture (batch, array of events, or one event; gzip, base64 or form `data=`)",
                "parameters": [_COMPRESSION],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/PosthogCapture"}},
                        "application/x-www-form-urlencoded": {
                            "schema": {"type": "object", "properties": {"data": {"type": "string"}}}
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "Committed; invalid events of a batch are dead-lettered.",
                        "content": {
                            "application/json": {"schema": {"type": "object", "properties": {"status": {"const": 1}}}}
                        },
                    },
                    **_ERRORS,
                },
            }
        }
        for path in CAPTURE_PATHS
    }


_FLAGS_REQUEST = {
    "type": "object",
    "required": ["distinct_id"],
    "properties": {
        "api_key": {"type": "string"},
        "token": {"type": "string"},
        "distinct_id": {"type": ["string", "integer"]},
        "person_properties": {"type": "object", "additionalProperties": True},
        "groups": {"type": "object"},
        "group_properties": {"type": "object"},
        "flag_keys_to_evaluate": {"type": "array", "items": {"type": "string"}},
    },
}
SCHEMAS["PosthogFlagsRequest"] = _FLAGS_REQUEST
SCHEMAS["PosthogFlagsResponse"] = {
    "type": "object",
    "description": "`flags` (per-flag records: /flags v2+, /decide v4+) or `featureFlags` + `featureFlagPayloads` (older versions).",
    "properties": {
        "flags": {"type": "object", "additionalProperties": {"type": "object"}},
        "featureFlags": {"type": "object", "additionalProperties": {"type": ["boolean", "string"]}},
        "featureFlagPayloads": {"type": "object", "additionalProperties": {"type": "string"}},
        "errorsWhileComputingFlags": {"type": "boolean"},
        "requestId": {"type": "string"},
    },
}


def flag_paths() -> dict[str, Any]:
    def operation(name: str, versions: str) -> dict[str, Any]:
        return {
            "post": {
                "operationId": f"posthog{name.capitalize()}",
                "summary": f"PostHog-compatible flag evaluation ({versions})",
                "parameters": [
                    {
                        "name": "v",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": versions,
                    },
                    _COMPRESSION,
                    {
                        "name": "record_exposure",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
                        "description": "true: also record a `$feature_flag_called` event per evaluated flag (one per flag, user and UTC day).",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PosthogFlagsRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "Every active flag, evaluated.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/PosthogFlagsResponse"}}
                        },
                    },
                    **_ERRORS,
                },
            }
        }

    return {
        "/flags/": operation("flags", "v=2 or later (default): per-flag records; v=1: maps"),
        "/decide/": operation("decide", "v=4: per-flag records; v=3 and older: maps"),
    }
