"""The OpenAPI 3 document served at /api/v1/analytics/openapi.json.

Written by hand (Starlette has no schema generator worth the name) and kept
complete enough for API fuzzers: every path, body schema and response.
"""

from __future__ import annotations

from typing import Any

from ingest_api.experiments import openapi as experiments
from ingest_api.ofrep import openapi as ofrep
from ingest_api.posthog import openapi as compat
from ingest_api.privacy import openapi as privacy

_STR200 = {"type": "string", "minLength": 1, "maxLength": 200}
_OPT_STR = {"type": ["string", "null"], "maxLength": 200}
_TS = {"type": ["string", "null"], "format": "date-time"}

_EVENT = {
    "type": "object",
    "required": ["distinct_id", "event_type"],
    "properties": {
        "distinct_id": {
            "oneOf": [_STR200, {"type": "integer"}],
            "description": "The user; a number is turned into a string.",
        },
        "event_type": {**_STR200, "description": "The event name (`event` is accepted as an alias)."},
        "event": {**_STR200, "description": "Alias of event_type."},
        "properties": {"type": "object", "additionalProperties": True},
        "device_id": _OPT_STR,
        "session_id": _OPT_STR,
        "app_version": _OPT_STR,
        "os_name": _OPT_STR,
        "os_version": _OPT_STR,
        "timestamp": {**_TS, "description": "When it happened, by the client's clock. No zone means UTC."},
        "sent_at": {
            **_TS,
            "description": "The client's clock when the request was sent; used for clock-skew correction.",
        },
        "uuid": {
            "type": ["string", "null"],
            "format": "uuid",
            "description": "Dedup key; assigned (UUIDv7) when missing.",
        },
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
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_WRITE_KEY_ERROR = {
    "401": _err(
        "`invalid_api_key`: write keys exist and the request carries no active one (see docs/integration_guide.md)."
    )
}
_COMMON_ERRORS = {
    "400": _err("Invalid body (see `error`)."),
    **_WRITE_KEY_ERROR,
    "413": _err("Body or event over the size limit."),
    "415": _err("Unsupported Content-Type or Content-Encoding."),
    "503": {
        **_err("Database unavailable; retry after `Retry-After` seconds."),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
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
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/CaptureAccepted"}}
                            },
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
                        "201": {
                            "description": "Created.",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/SessionStarted"}}
                            },
                        },
                        "200": {
                            "description": "The same start was already recorded.",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/SessionStarted"}}
                            },
                        },
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
                        "200": {
                            "description": "Ended.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionEnded"}}},
                        },
                        "404": _err("Unknown session."),
                        **_COMMON_ERRORS,
                    },
                }
            },
            **_flag_paths(),
            **_admin_paths(),
            **privacy.paths(),
            **_analytics_paths(),
            **experiments.paths(),
            **compat.capture_paths(),
            **compat.flag_paths(),
            **ofrep.paths(),
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics of this process",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "The process is up",
                    "responses": {"200": {"description": "Up."}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "The database is reachable",
                    "responses": {"200": {"description": "Ready."}, "503": _COMMON_ERRORS["503"]},
                }
            },
            "/api/v1/analytics/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3 document."}},
                }
            },
        },
        "components": {
            "schemas": {
                "SavedFunnel": SAVED_FUNNEL_SCHEMA,
                "Event": _EVENT,
                "Batch": {
                    "type": "object",
                    "properties": {
                        "events": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Event"},
                            "minItems": 1,
                            "maxItems": 1000,
                        },
                        "batch": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Event"},
                            "description": "Alias of events (PostHog SDKs).",
                        },
                        "sent_at": _TS,
                    },
                },
                "CaptureAccepted": {
                    "type": "object",
                    "properties": {
                        "accepted": {"type": "integer"},
                        "uuid": {"type": "string", "format": "uuid"},
                        "warnings": {"type": "array", "items": {"type": "string"}},
                    },
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
                    "properties": {
                        "session_id": {"type": "string", "format": "uuid"},
                        "started_at": {"type": "string", "format": "date-time"},
                    },
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
                **compat.SCHEMAS,
                **ofrep.SCHEMAS,
                **experiments.SCHEMAS,
                **privacy.SCHEMAS,
                "FlagDefinition": _FLAG_DEFINITION,
                "Flag": _FLAG,
                "PublicFlag": _PUBLIC_FLAG,
                "PublicFlagList": {
                    "type": "object",
                    "required": ["results"],
                    "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/PublicFlag"}}},
                },
                "FlagsForUser": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "active": {"type": "boolean"},
                            "variant": {"type": ["string", "null"]},
                            "payload": {},
                        },
                    },
                },
                "UserContext": {
                    "type": "object",
                    "required": ["distinct_id"],
                    "properties": {
                        "distinct_id": {"oneOf": [_STR200, {"type": "integer"}]},
                        "device_id": _OPT_STR,
                        "app_version": _OPT_STR,
                        "os_name": _OPT_STR,
                        "os_version": _OPT_STR,
                        "properties": {"type": "object"},
                    },
                },
                "Page": {
                    "type": "object",
                    "properties": {
                        "next": {"type": ["string", "null"]},
                        "previous": {"type": ["string", "null"]},
                        "results": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
            "securitySchemes": {
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin API key (eventtrack create-admin-key).",
                }
            },
        },
    }


_FILTER = {
    "type": "object",
    "required": ["key", "operator"],
    "properties": {"key": {"type": "string"}, "operator": {"type": "string"}, "value": {}},
}
_FLAG_DEFINITION = {
    "type": "object",
    "properties": {
        "key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$", "maxLength": 200},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "active": {"type": "boolean"},
        "rollout_percentage": {"type": "number", "minimum": 0, "maximum": 100},
        "variants": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "rollout_percentage"],
                "properties": {"key": {"type": "string"}, "rollout_percentage": {"type": "number"}, "payload": {}},
            },
        },
        "conditions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "properties": {"type": "array", "items": _FILTER},
                    "rollout_percentage": {"type": ["number", "null"]},
                    "variant": {"type": ["string", "null"]},
                },
            },
        },
        "payload": {},
    },
}
_FLAG = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        **_FLAG_DEFINITION["properties"],
        "version": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}


# The public endpoints' view of a flag (ingest_api/routes/flags.py `public_flag`): no targeting, rollout or payload.
_PUBLIC_FLAG = {
    "type": "object",
    "required": ["id", "key", "name", "active", "variant_keys"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer"},
        "key": {"type": "string"},
        "name": {"type": "string"},
        "active": {"type": "boolean"},
        "variant_keys": {"type": "array", "items": {"type": "string"}},
    },
}


def _ok(schema_ref: str, description: str = "OK.") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _query(name: str, schema: dict[str, Any], required: bool = False, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


_RECORD_EXPOSURE = {
    "name": "record_exposure",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
    "description": "true: also record a `$feature_flag_called` event per active flag (one per flag, user and UTC day).",
}
_ETAG = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
_FLAG_ID = {"name": "flag_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    _query("cursor", {"type": "string"}, description="From a `next` or `previous` link."),
]
_WINDOW = [
    _query("start", {"type": "string", "format": "date-time"}),
    _query("end", {"type": "string", "format": "date-time"}),
]
_ADMIN_ERRORS = {
    "400": _err("Invalid parameter or body."),
    "401": _err("Missing, malformed, unknown or revoked admin key."),
    "503": _COMMON_ERRORS["503"],
}
# Every admin body is read by admin.http.json_object, under its size limit (payload_too_large).
_ADMIN_BODY_ERRORS = {**_ADMIN_ERRORS, "413": _COMMON_ERRORS["413"]}


def _flag_paths() -> dict[str, Any]:
    base = "/api/v1/analytics/public/feature-flags"
    return {
        f"{base}/": {
            "get": {
                "operationId": "listActiveFlags",
                "summary": "The active feature flags: id, key, name, variant keys (no targeting, rollout or payload)",
                "parameters": [_ETAG],
                "responses": {
                    "200": _ok("#/components/schemas/PublicFlagList", "Active flags, with an ETag."),
                    "304": {"description": "Not modified."},
                    **_WRITE_KEY_ERROR,
                },
            }
        },
        f"{base}/{{flag_id}}/": {
            "get": {
                "operationId": "getFlag",
                "summary": "One feature flag: id, key, name, active, variant keys",
                "parameters": [_FLAG_ID],
                "responses": {
                    "200": _ok("#/components/schemas/PublicFlag"),
                    "404": _err("Unknown flag."),
                    **_WRITE_KEY_ERROR,
                },
            }
        },
        f"{base}/for_user/": {
            "get": {
                "operationId": "flagsForUserGet",
                "summary": "Evaluate every flag for a user",
                "parameters": [
                    _query("distinct_id", {"type": "string", "minLength": 1, "maxLength": 200}, required=True),
                    _query("device_id", {"type": "string"}),
                    _query("app_version", {"type": "string"}),
                    _query("os_name", {"type": "string"}),
                    _query("os_version", {"type": "string"}),
                    _query("properties", {"type": "string"}, description="Person properties as a JSON object."),
                    _ETAG,
                    _RECORD_EXPOSURE,
                ],
                "responses": {
                    "200": _ok("#/components/schemas/FlagsForUser"),
                    "304": {"description": "Not modified."},
                    "400": _err("distinct_id missing or invalid."),
                    **_WRITE_KEY_ERROR,
                },
            },
            "post": {
                "operationId": "flagsForUserPost",
                "summary": "Evaluate every flag for a user (context in the body)",
                "parameters": [_RECORD_EXPOSURE],
                "requestBody": _json_body("#/components/schemas/UserContext"),
                "responses": {
                    "200": _ok("#/components/schemas/FlagsForUser"),
                    "400": _err("distinct_id missing or invalid."),
                    "413": _COMMON_ERRORS["413"],
                    **_WRITE_KEY_ERROR,
                },
            },
        },
    }


def _admin_paths() -> dict[str, Any]:
    base = "/api/v1/analytics/admin"
    secured = [{"adminKey": []}]
    return {
        f"{base}/events/": {
            "get": {
                "operationId": "adminListEvents",
                "summary": "Raw events, newest first",
                "security": secured,
                "parameters": [
                    _query("event_type", {"type": "string"}),
                    _query("distinct_id", {"type": "string"}),
                    _query("session_id", {"type": "string"}),
                    *_WINDOW,
                    *_PAGING,
                ],
                "responses": {"200": _ok("#/components/schemas/Page"), **_ADMIN_ERRORS},
            }
        },
        f"{base}/events/event_counts/": {
            "get": {
                "operationId": "adminEventCounts",
                "summary": "Exact event counts by type over [start, end) (default: the last 24 hours)",
                "security": secured,
                "parameters": [_query("event_type", {"type": "string"}), *_WINDOW, *_SEGMENT],
                "responses": {"200": {"description": "Counts by event type, largest first."}, **_ADMIN_ERRORS},
            }
        },
        f"{base}/event-aggregates/": {
            "get": {
                "operationId": "adminEventAggregates",
                "summary": "Rows of the hourly or daily aggregate",
                "security": secured,
                "parameters": [
                    _query("granularity", {"type": "string", "enum": ["hour", "day"]}),
                    _query("event_type", {"type": "string"}),
                    _query("app_version", {"type": "string"}),
                    _query("os_name", {"type": "string"}),
                    *_WINDOW,
                    *_PAGING,
                    *_SEGMENT,
                ],
                "responses": {"200": _ok("#/components/schemas/Page"), **_ADMIN_ERRORS},
            }
        },
        f"{base}/sessions/": {
            "get": {
                "operationId": "adminListSessions",
                "summary": "Sessions, newest first",
                "security": secured,
                "parameters": [
                    _query("distinct_id", {"type": "string"}),
                    _query("status", {"type": "string", "enum": ["active", "ended"]}),
                    *_WINDOW,
                    *_PAGING,
                ],
                "responses": {"200": _ok("#/components/schemas/Page"), **_ADMIN_ERRORS},
            }
        },
        f"{base}/feature-flags/": {
            "get": {
                "operationId": "adminListFlags",
                "summary": "All feature flags",
                "security": secured,
                "parameters": [_query("active", {"type": "string", "enum": ["true", "false"]}), *_PAGING],
                "responses": {"200": _ok("#/components/schemas/Page"), **_ADMIN_ERRORS},
            },
            "post": {
                "operationId": "adminCreateFlag",
                "summary": "Create a feature flag",
                "security": secured,
                "requestBody": _json_body("#/components/schemas/FlagDefinition"),
                "responses": {"201": _ok("#/components/schemas/Flag", "Created."), **_ADMIN_BODY_ERRORS},
            },
        },
        f"{base}/feature-flags/{{flag_id}}/": {
            **{
                method: {
                    "operationId": f"admin{name}Flag",
                    "summary": summary,
                    "security": secured,
                    "parameters": [_FLAG_ID],
                    **(
                        {"requestBody": _json_body("#/components/schemas/FlagDefinition")}
                        if method in ("put", "patch")
                        else {}
                    ),
                    "responses": {
                        **(
                            {"204": {"description": "Deleted."}}
                            if method == "delete"
                            else {"200": _ok("#/components/schemas/Flag")}
                        ),
                        "404": _err("Unknown flag."),
                        **(_ADMIN_BODY_ERRORS if method in ("put", "patch") else _ADMIN_ERRORS),
                    },
                }
                for method, name, summary in [
                    ("get", "Get", "One feature flag"),
                    ("put", "Replace", "Replace a flag's definition (bumps version)"),
                    ("patch", "Update", "Change some fields of a flag (bumps version)"),
                    ("delete", "Delete", "Delete a flag"),
                ]
            }
        },
    }


# Segmentation (eventtrack/analytics/segments.py, docs/analytics.md "Segmentation").
_FILTER = {
    "name": "filter",
    "in": "query",
    "required": False,
    "style": "form",
    "explode": True,
    "schema": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
    "description": "Repeatable `properties.<key><op><value>`, op one of = != > >= < <=; e.g. `properties.plan=pro`.",
}
_BREAKDOWN = _query(
    "breakdown",
    {"type": "string"},
    description="`os_name`, `app_version`, `os_version`, `event_type` or `properties.<key>`.",
)
_SEGMENT = [_FILTER, _BREAKDOWN]


def _analytics_paths() -> dict[str, Any]:
    base = "/api/v1/analytics/admin"
    secured = [{"adminKey": []}]
    return {
        f"{base}/funnels/": {
            "get": {
                "operationId": "adminFunnel",
                "summary": "Users reaching each step in order within the conversion window (raw events)",
                "security": secured,
                "parameters": [
                    _query(
                        "steps",
                        {"type": "string"},
                        required=True,
                        description="2-10 event types, comma-separated: `app_open,view_item,purchase`.",
                    ),
                    _query(
                        "window",
                        {"type": "string", "pattern": "^[1-9][0-9]{0,6}[smhd]$"},
                        description="Conversion window from the first step; default 24h, at most 90d.",
                    ),
                    *_WINDOW,
                    *_SEGMENT,
                ],
                "responses": {
                    "200": {"description": "Per step: users, conversions, median seconds from the previous step."},
                    **_ADMIN_ERRORS,
                },
            }
        },
        f"{base}/funnels/saved/": {
            "get": {
                "operationId": "adminListSavedFunnels",
                "summary": "Saved funnels (their results are built daily by the pipeline)",
                "security": secured,
                "responses": {"200": {"description": "Every saved funnel."}, **_ADMIN_ERRORS},
            },
            "post": {
                "operationId": "adminSaveFunnel",
                "summary": "Save a funnel",
                "security": secured,
                "requestBody": _json_body("#/components/schemas/SavedFunnel"),
                "responses": {
                    "201": {"description": "Saved; results appear after the next daily run."},
                    **_ADMIN_BODY_ERRORS,
                },
            },
        },
        f"{base}/funnels/saved/{{funnel_id}}/": {
            method: {
                "operationId": operation,
                "summary": summary,
                "security": secured,
                "parameters": [_FUNNEL_ID],
                "responses": {
                    **(
                        {"204": {"description": "Deleted."}}
                        if method == "delete"
                        else {"200": {"description": "Definition and the latest results."}}
                    ),
                    "404": _err("Unknown saved funnel."),
                    **_ADMIN_ERRORS,
                },
            }
            for method, operation, summary in [
                ("get", "adminGetSavedFunnel", "A saved funnel and its results from analytics.funnel_results"),
                ("delete", "adminDeleteSavedFunnel", "Delete a saved funnel"),
            ]
        },
        f"{base}/retention/": {
            "get": {
                "operationId": "adminRetention",
                "summary": "The cohort triangle of analytics.retention_weekly / retention_daily",
                "security": secured,
                "parameters": [_query("period", {"type": "string", "enum": ["week", "day"]}), *_WINDOW],
                "responses": {
                    "200": {"description": "One entry per cohort: users and retained users per period."},
                    **_ADMIN_ERRORS,
                },
            }
        },
    }


_FUNNEL_ID = {"name": "funnel_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
SAVED_FUNNEL_SCHEMA = {
    "type": "object",
    "required": ["name", "steps"],
    "additionalProperties": False,
    "properties": {
        "name": _STR200,
        "steps": {"type": "array", "minItems": 2, "maxItems": 10, "items": _STR200},
        "window": {"type": "string", "pattern": "^[1-9][0-9]{0,6}[smhd]$", "description": "Default 24h, at most 90d."},
        "range_days": {
            "type": "integer",
            "minimum": 1,
            "maximum": 366,
            "description": "Whole UTC days before each run; default 30.",
        },
    },
}
