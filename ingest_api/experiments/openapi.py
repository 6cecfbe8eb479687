"""OpenAPI paths and schemas of the experiment admin routes (merged into ingest_api/openapi.py)."""

from __future__ import annotations

from typing import Any

_EVENT_NAME = {"type": "string", "minLength": 1, "maxLength": 200}
_ERR = {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _err(description: str) -> dict[str, Any]:
    return {**_ERR, "description": description}


_ERRORS = {
    "400": _err("Invalid parameter or body (`fields` names each problem)."),
    "401": _err("Missing, malformed, unknown or revoked admin key."),
    "503": _err("Database unavailable; retry after `Retry-After` seconds."),
}
# Bodies are read by admin.http.json_object, under its size limit (payload_too_large).
_BODY_ERRORS = {**_ERRORS, "413": _err("Body over the size limit.")}
_ID = {"name": "experiment_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}

SCHEMAS: dict[str, Any] = {
    "ExperimentDefinition": {
        "type": "object",
        "required": ["name", "flag_key", "goal_event", "start_at", "end_at"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 400},
            "description": {"type": "string"},
            "flag_key": {"type": "string", "description": "Key of an existing feature flag."},
            "control_variant": {
                "type": "string",
                "description": "A variant of the flag (default `control` if the flag has one); for a boolean flag `false` (`control` is accepted).",
            },
            "goal_event": {**_EVENT_NAME, "description": "The conversion event."},
            "secondary_events": {"type": "array", "maxItems": 10, "items": _EVENT_NAME},
            "start_at": {"type": "string", "format": "date-time"},
            "end_at": {
                "type": "string",
                "format": "date-time",
                "description": "After start_at; the window is [start_at, end_at).",
            },
        },
    },
    "Experiment": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "flag_key": {"type": "string"},
            "control_variant": {"type": "string"},
            "goal_event": {"type": "string"},
            "secondary_events": {"type": "array", "items": {"type": "string"}},
            "variants": {
                "type": "array",
                "description": "The flag's variants and expected split, copied from the flag at each save.",
                "items": {
                    "type": "object",
                    "properties": {"key": {"type": "string"}, "expected_percentage": {"type": "number"}},
                },
            },
            "start_at": {"type": "string", "format": "date-time"},
            "end_at": {"type": "string", "format": "date-time"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "ExperimentResults": {
        "type": "object",
        "properties": {
            "experiment_id": {"type": "integer"},
            "computed_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "null until the pipeline has computed them.",
            },
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "One row of analytics.agg_experiment_results (docs/analytics.md).",
                },
            },
        },
    },
}


def _ok(ref: str, description: str = "OK.") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def paths() -> dict[str, Any]:
    base = "/api/v1/analytics/admin/experiments"
    secured = [{"adminKey": []}]
    paging = [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
        {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "flag_key", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    item = {
        method: {
            "operationId": f"admin{name}Experiment",
            "summary": summary,
            "security": secured,
            "parameters": [_ID],
            **(
                {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ExperimentDefinition"}}
                        },
                    }
                }
                if method in ("put", "patch")
                else {}
            ),
            "responses": {
                **(
                    {"204": {"description": "Deleted."}}
                    if method == "delete"
                    else {"200": _ok("#/components/schemas/Experiment")}
                ),
                "404": _err("Unknown experiment."),
                **(_BODY_ERRORS if method in ("put", "patch") else _ERRORS),
            },
        }
        for method, name, summary in [
            ("get", "Get", "One experiment"),
            ("put", "Replace", "Replace an experiment's definition"),
            ("patch", "Update", "Change some fields of an experiment"),
            ("delete", "Delete", "Delete an experiment"),
        ]
    }
    return {
        f"{base}/": {
            "get": {
                "operationId": "adminListExperiments",
                "summary": "All experiments",
                "security": secured,
                "parameters": paging,
                "responses": {"200": _ok("#/components/schemas/Page"), **_ERRORS},
            },
            "post": {
                "operationId": "adminCreateExperiment",
                "summary": "Create an experiment",
                "security": secured,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExperimentDefinition"}}},
                },
                "responses": {"201": _ok("#/components/schemas/Experiment", "Created."), **_BODY_ERRORS},
            },
        },
        f"{base}/{{experiment_id}}/": item,
        f"{base}/{{experiment_id}}/results/": {
            "get": {
                "operationId": "adminExperimentResults",
                "summary": "Per-variant results of an experiment, as last computed by the pipeline",
                "security": secured,
                "parameters": [_ID],
                "responses": {
                    "200": _ok("#/components/schemas/ExperimentResults"),
                    "404": _err("Unknown experiment."),
                    **_ERRORS,
                },
            }
        },
    }
