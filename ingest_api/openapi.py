"""The OpenAPI 3 document served at /api/v1/analytics/openapi.json, generated from the routes' declarations.

Each area declares its bodies as msgspec types and its operations in a table, next to its routes
(`schemas.py`; the vocabulary is declarations.py). Here they become the document: `components.schemas` from
the types (msgspec.json.schema_components), the paths from the tables, and each error's status from the
catalogue (eventtrack/errors.py). Complete enough for API fuzzers: every path, body schema and status.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import msgspec

from eventtrack.errors import CATALOGUE, status_of
from ingest_api.admin import schemas as admin
from ingest_api.declarations import Error, Operation, Param
from ingest_api.experiments import schemas as experiments
from ingest_api.ofrep import schemas as ofrep
from ingest_api.posthog import schemas as posthog
from ingest_api.privacy import schemas as privacy
from ingest_api.routes import schemas as native

REF = "#/components/schemas/{name}"
OPERATIONS: tuple[Operation, ...] = (
    *native.OPERATIONS,
    *admin.OPERATIONS,
    *privacy.OPERATIONS,
    *experiments.OPERATIONS,
    *posthog.OPERATIONS,
    *ofrep.OPERATIONS,
)
INFO = {
    "title": "eventtrack ingest API",
    "version": "1.0.0",
    "description": "Capture events and sessions from mobile apps. See docs/mobile_api.md.",
}
ADMIN_KEY = {"type": "http", "scheme": "bearer", "description": "An admin API key (eventtrack create-admin-key)."}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}}}


@functools.cache
def openapi_document() -> dict[str, Any]:
    return build_document(OPERATIONS)


def _body_types(operation: Operation) -> Iterable[Any]:
    request = operation.request if isinstance(operation.request, tuple) else (operation.request,)
    yield from (t for t in (*request, operation.form) if t is not None)
    yield from (r.type for r in operation.responses if r.type is not None)
    if operation.errors:
        yield Error
    if operation.failures:
        yield operation.failure_type


def build_document(operations: Iterable[Operation]) -> dict[str, Any]:
    operations = tuple(operations)
    types = list(dict.fromkeys(t for op in operations for t in _body_types(op)))
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    schema_of = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schema_of)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"adminKey": ADMIN_KEY}},
    }


def _json(schema: dict[str, Any], media_type: str = "application/json") -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def _operation(op: Operation, schema_of: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.admin:
        out["security"] = [{"adminKey": []}]
    if op.params:
        out["parameters"] = [_parameter(p) for p in op.params]
    if op.request is not None:
        if isinstance(op.request, tuple):
            content = _json({"oneOf": [schema_of[t] for t in op.request]})
        else:
            content = _json(schema_of[op.request])
        if op.form is not None:
            content |= _json(schema_of[op.form], "application/x-www-form-urlencoded")
        out["requestBody"] = {"required": op.request_required, "content": content}
    responses: dict[str, Any] = {}
    for r in op.responses:
        responses[str(r.status)] = {"description": r.description}
        if r.type is not None:
            responses[str(r.status)]["content"] = _json(schema_of[r.type], r.media_type)
    errors = error_responses(op.errors, schema_of.get(Error), op.notes)
    failures = error_responses(op.failures, schema_of.get(op.failure_type), op.notes)
    if set(responses) & set(errors) or set(errors) & set(failures):
        raise ValueError(f"{op.method} {op.path}: a status is declared twice")
    out["responses"] = responses | errors | failures
    return out


def _parameter(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": param.name,
        "in": param.where,
        "required": param.required,
        "schema": msgspec.json.schema(param.type),
    }
    if param.description:
        out["description"] = param.description
    if param.explode:
        out |= {"style": "form", "explode": True}
    return out


def error_responses(codes: Iterable[str], schema: dict[str, Any] | None, notes: dict[int, str]) -> dict[str, Any]:
    """The error answers of catalogue codes, one per status (the catalogue's), each listing its codes."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(status_of(code), []).append(code)
    out = {}
    for status, group in sorted(by_status.items()):
        description = notes.get(status) or " ".join(f"`{code}`: {CATALOGUE[code].detail}" for code in group)
        out[str(status)] = {"description": description, "content": _json(schema)}
        if "service_unavailable" in group:
            out[str(status)]["headers"] = RETRY_AFTER
    return out
