"""The OpenAPI 3 document served at /api/v1/analytics/openapi.json.

Written by hand (Starlette has no schema generator worth the name) and kept
complete enough for API fuzzers: every path, body schema and response.
"""

from __future__ import annotations

from typing import Any

_STR200 = {"type": "string", "minLength": 1, "maxLength": 200}
_OPT_STR = {"type": ["string", "null"], "maxLength": 200}
_TS = {"type": ["string", "null"], "format": "date-time"}

_EVENT = {
    "type": "object",
    "required": ["distinct_id", "event_type"],
    "properties": {
        "distinct_id": {"oneOf": [_STR200, {"type": "integer"}], "description": "The user; a number is turned into a string."},
        "event_type": {**_STR200, "description": "The event name (`event` is accepted as an alias)."},
        "event": {**_STR200, "description": "Alias of event_type."},
        "properties": {"type": "object", "additionalProperties": True},
        "device_id": _OPT_STR,
        "session_id": _OPT_STR,
        "app_version": _OPT_STR,
        "os_name": _OPT_STR,
        "os_version": _OPT_STR,
        "timestamp": {**_TS, "description": "When it happened, by the client's clock. No zone means UTC."},
        "sent_at": {**_TS, "description": "The client's clock when the request was sent; used for clock-skew correction."},
        "uuid": {"type": ["string", "null"], "format": "uuid", "description": "Dedup key; assigned (UUIDv7) when missing."},
    },
}

_ERROR = {
    "type": "object",
    "required": ["error", "detail", "fields"],
    "properties": {
        "error": {"type": "string", "description": "Machine-readable code."},
        "detail": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": True},
    },
}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_COMMON_ERRORS = {
    "400": _err("Invalid body (see `error`)."),
    "413": _err("Body or event over the size limit."),
    "415": _err("Unsupported Content-Type or Content-Encoding."),
    "503": {**_err("Database unavailable; retry after `Retry-After` seconds."), "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
}


def _json_body(schema_ref: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def openapi_document() -> dict[str, Any]:
    session_id_param = {
        "name": "session_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eventtrack ingest API",
            "version": "1.0.0",
            "description": "Capture events and sessions from mobile apps. See docs/mobile_api.md.",
        },
        "paths": {
            "/api/v1/analytics/capture/": {
                "post": {
                    "operationId": "capture",
                    "summary": "Capture one event",
                    "requestBody": _json_body("#/components/schemas/Event"),
                    "responses": {
                        "200": {
                            "description": "Committed (or already stored: a resend is accepted again).",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CaptureAccepted"}}},
                        },
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/api/v1/analytics/batch/": {
                "post": {
                    "operationId": "batch",
                    "summary": "Capture a batch of events; invalid ones are refused one by one",
                    "requestBody": _json_body("#/components/schemas/Batch"),
                    "responses": {
                        "200": {
                            "description": "The valid events are committed; `rejected` lists the others.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchAccepted"}}},
                        },
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/api/v1/analytics/session/start/": {
                "post": {
                    "operationId": "startSession",
                    "summary": "Start a session",
                    "requestBody": _json_body("#/components/schemas/SessionStart"),
                    "responses": {
                        "201": {"description": "Created.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionStarted"}}}},
                        "200": {"description": "The same start was already recorded.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionStarted"}}}},
                        "409": _err("The session id belongs to another distinct_id."),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/api/v1/analytics/session/{session_id}/end/": {
                "put": {
                    "operationId": "endSession",
                    "summary": "End a session (idempotent)",
                    "parameters": [session_id_param],
                    "requestBody": _json_body("#/components/schemas/SessionEnd", required=False),
                    "responses": {
                        "200": {"description": "Ended.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionEnded"}}}},
                        "404": _err("Unknown session."),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/healthz": {"get": {"operationId": "healthz", "summary": "The process is up", "responses": {"200": {"description": "Up."}}}},
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "The database is reachable",
                    "responses": {"200": {"description": "Ready."}, "503": _COMMON_ERRORS["503"]},
                }
            },
            "/api/v1/analytics/openapi.json": {
                "get": {"operationId": "openapi", "summary": "This document", "responses": {"200": {"description": "OpenAPI 3 document."}}}
            },
        },
        "components": {
            "schemas": {
                "Event": _EVENT,
                "Batch": {
                    "type": "object",
                    "properties": {
                        "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}, "minItems": 1, "maxItems": 1000},
                        "batch": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}, "description": "Alias of events (PostHog SDKs)."},
                        "sent_at": _TS,
                    },
                },
                "CaptureAccepted": {
                    "type": "object",
                    "properties": {"accepted": {"type": "integer"}, "uuid": {"type": "string", "format": "uuid"}, "warnings": {"type": "array", "items": {"type": "string"}}},
                },
                "BatchAccepted": {
                    "type": "object",
                    "properties": {
                        "accepted": {"type": "integer"},
                        "rejected": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "index": {"type": "integer"},
                                    "error": {"type": "string"},
                                    "detail": {"type": "string"},
                                    "fields": {"type": "object"},
                                },
                            },
                        },
                    },
                },
                "SessionStart": {
                    "type": "object",
                    "required": ["distinct_id"],
                    "properties": {
                        "session_id": {"type": ["string", "null"], "format": "uuid"},
                        "distinct_id": {"oneOf": [_STR200, {"type": "integer"}]},
                        "device_id": _OPT_STR,
                        "app_version": _OPT_STR,
                        "os_name": _OPT_STR,
                        "os_version": _OPT_STR,
                        "properties": {"type": "object"},
                        "started_at": _TS,
                        "sent_at": _TS,
                    },
                },
                "SessionStarted": {
                    "type": "object",
                    "properties": {"session_id": {"type": "string", "format": "uuid"}, "started_at": {"type": "string", "format": "date-time"}},
                },
                "SessionEnd": {"type": "object", "properties": {"ended_at": _TS, "sent_at": _TS}},
                "SessionEnded": {
                    "type": "object",
                    "properties": {
                        "session_id": {"type": "string", "format": "uuid"},
                        "started_at": {"type": "string", "format": "date-time"},
                        "ended_at": {"type": "string", "format": "date-time"},
                        "duration_seconds": {"type": "number"},
                    },
                },
                "Error": _ERROR,
            }
        },
    }
