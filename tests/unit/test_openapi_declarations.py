"""The OpenAPI document is generated from the routes' declarations (ingest_api/openapi.py): its schemas are
the declared types', its limits the validators' constants, its error statuses the catalogue's."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from eventtrack.analytics import funnels as funnel_query
from eventtrack.errors import CATALOGUE
from ingest_api.declarations import Operation, Response, query
from ingest_api.flags import definition as flag_definition
from ingest_api.openapi import OPERATIONS, build_document, openapi_document
from ingest_api.validation import MAX_ID_LENGTH


def _document_of(max_length: int) -> dict:
    thing = msgspec.defstruct("Thing", [("name", Annotated[str, Meta(max_length=max_length, description="A name.")])])

    operation = Operation(
        "post",
        "/things/",
        "createThing",
        "Create a thing",
        (Response(201, "Created.", thing),),
        errors=("validation_error", "payload_too_large", "service_unavailable"),
        request=thing,
        params=(query("limit", Annotated[int, Meta(ge=1, le=max_length)]),),
    )
    return build_document([operation])


@pytest.mark.parametrize("max_length", [7, 4242])
def test_a_declared_constraint_is_what_the_document_says(max_length):
    document = _document_of(max_length)
    thing = document["components"]["schemas"]["Thing"]
    assert thing["properties"]["name"] == {"type": "string", "maxLength": max_length, "description": "A name."}
    operation = document["paths"]["/things/"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Thing"}
    assert operation["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }
    assert operation["parameters"][0]["schema"] == {"type": "integer", "minimum": 1, "maximum": max_length}


def test_error_answers_take_their_status_from_the_catalogue():
    responses = _document_of(7)["paths"]["/things/"]["post"]["responses"]
    assert set(responses) == {"201", "400", "413", "503"}
    assert "`validation_error`" in responses["400"]["description"]
    assert CATALOGUE["payload_too_large"].detail in responses["413"]["description"]
    assert responses["503"]["headers"] == {"Retry-After": {"schema": {"type": "integer"}}}
    assert responses["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_served_document_is_built_from_the_declared_operations():
    document = openapi_document()
    assert {(op.path, op.method) for op in OPERATIONS} == {
        (path, method) for path, item in document["paths"].items() for method in item
    }


def _refs(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_every_reference_resolves_and_every_component_is_used():
    document = openapi_document()
    components = document["components"]["schemas"]
    refs = _refs(document)
    assert refs == {f"#/components/schemas/{name}" for name in components}


def test_the_documents_limits_are_the_validators_constants():
    schemas = openapi_document()["components"]["schemas"]
    assert schemas["Event"]["properties"]["event_type"]["maxLength"] == MAX_ID_LENGTH
    assert schemas["SavedFunnel"]["properties"]["steps"]["maxItems"] == funnel_query.MAX_STEPS
    assert schemas["SavedFunnel"]["properties"]["range_days"]["maximum"] == funnel_query.MAX_RANGE_DAYS
    key = schemas["FlagDefinition"]["properties"]["key"]
    assert (key["maxLength"], key["pattern"]) == (
        flag_definition.MAX_KEY_LENGTH,
        f"^{flag_definition.KEY_PATTERN}$",
    )
