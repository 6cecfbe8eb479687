"""The privacy routes in the OpenAPI document (merged by ingest_api/openapi.py)."""

from __future__ import annotations

from typing import Any

_ERR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ERRORS = {
    "400": {"description": "Invalid distinct_id or parameter.", **_ERR},
    "401": {"description": "Missing, malformed, unknown or revoked admin key.", **_ERR},
    "503": {
        "description": "Database unavailable; retry after `Retry-After` seconds.",
        **_ERR,
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}
_DISTINCT_ID = {
    "name": "distinct_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": "Any id of the person (the identified id, or an id merged into it); a slash is sent as %2F.",
}
_SECURED = [{"adminKey": []}]


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def paths() -> dict[str, Any]:
    base = "/api/v1/analytics/admin"
    return {
        f"{base}/persons/{{distinct_id}}/": {
            "delete": {
                "operationId": "adminErasePerson",
                "summary": "Erase every row of a person (events, sessions, person, merged ids, dead letters); queues the aggregates' rebuild",
                "security": _SECURED,
                "parameters": [_DISTINCT_ID],
                "responses": {
                    "200": {
                        "description": "Erased (also when nothing was found): the rows deleted per table.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Erasure"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        f"{base}/persons/{{distinct_id}}/export/": {
            "get": {
                "operationId": "adminExportPerson",
                "summary": "All the data of a person as one JSON document (streamed)",
                "security": _SECURED,
                "parameters": [_DISTINCT_ID],
                "responses": {
                    "200": {
                        "description": "The person's data.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PersonExport"}}},
                    },
                    **_ERRORS,
                },
            }
        },
        f"{base}/audit-log/": {
            "get": {
                "operationId": "adminAuditLog",
                "summary": "Erasures and exports, newest first",
                "security": _SECURED,
                "parameters": [
                    _query("action", {"type": "string", "enum": ["erase_person", "export_person"]}),
                    _query("distinct_id", {"type": "string", "maxLength": 200}),
                    _query("start", {"type": "string", "format": "date-time"}),
                    _query("end", {"type": "string", "format": "date-time"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _query("cursor", {"type": "string"}),
                ],
                "responses": {
                    "200": {
                        "description": "A page of audit rows.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Page"}}},
                    },
                    **_ERRORS,
                },
            }
        },
    }


_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
SCHEMAS: dict[str, Any] = {
    "Erasure": {
        "type": "object",
        "properties": {
            "distinct_id": {"type": "string"},
            "person_distinct_id": {"type": "string"},
            "distinct_ids": {"type": "array", "items": {"type": "string"}},
            "deleted": _COUNTS,
            "aggregate_buckets_queued": {"type": "integer"},
            "audit_id": {"type": "string", "format": "uuid"},
        },
    },
    "PersonExport": {
        "type": "object",
        "properties": {
            "distinct_id": {"type": "string"},
            "person_distinct_id": {"type": "string"},
            "distinct_ids": {"type": "array", "items": {"type": "string"}},
            "exported_at": {"type": "string", "format": "date-time"},
            "audit_id": {"type": "string", "format": "uuid"},
            "person": {"type": ["object", "null"]},
            "merged_ids": {"type": "array", "items": {"type": "object"}},
            "sessions": {"type": "array", "items": {"type": "object"}},
            "events": {"type": "array", "items": {"type": "object"}},
            "rejected_events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "A dead letter; its payload as `payload_text` (UTF-8) or `payload_base64`.",
                },
            },
        },
    },
}
