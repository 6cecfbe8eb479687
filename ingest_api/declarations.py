"""The vocabulary the routes' declarations are written in: an `Operation` per method and path (its body and
answer types, parameters and error codes), and the types several areas share.

Each area declares its bodies and its operations next to its routes (`schemas.py`); ingest_api/openapi.py
turns them into the OpenAPI document. Error codes are the catalogue's (eventtrack/errors.py): an operation
lists the codes it may answer, the document takes each one's status from the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

# msgspec describes a datetime as a plain string (it also reads one without a zone); ours are RFC 3339.
Timestamp = Annotated[datetime, Meta(extra_json_schema={"format": "date-time"})]


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # query, path or header
    type: Any  # declared like a body field: the document's schema is generated from it
    required: bool = False
    description: str = ""
    explode: bool = False  # a repeatable query parameter (?filter=a&filter=b)


def query(name: str, type_: Any = str, description: str = "", required: bool = False) -> Param:
    return Param(name, "query", type_, required, description)


def path(name: str, type_: Any = str, description: str = "") -> Param:
    return Param(name, "path", type_, True, description)


PositiveId = Annotated[int, Meta(ge=1)]
ETAG = Param("If-None-Match", "header", str)
WINDOW = (query("start", Timestamp), query("end", Timestamp))
RECORD_EXPOSURE = query(
    "record_exposure",
    Literal["true", "false", "1", "0"],
    "true: also record a `$feature_flag_called` event per evaluated flag (one per flag, user and UTC day).",
)


@dataclass(frozen=True)
class Response:
    """An answer that is not an error: its status, what it means and its body's type (None: no JSON body)."""

    status: int
    description: str = "OK."
    type: Any = None
    media_type: str = "application/json"
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    responses: tuple[Response, ...]
    errors: tuple[str, ...] = ()  # catalogue codes, answered with the Error body
    # Codes answered with a protocol's own error body (OFREP's), and that body's type.
    failures: tuple[str, ...] = ()
    failure_type: Any = None
    request: Any = None  # the body's type; a tuple of types: one of them
    request_required: bool = True
    form: Any = None  # the type of a form body also accepted (PostHog SDKs)
    params: tuple[Param, ...] = ()
    admin: bool = False  # needs an admin key (the adminKey security scheme)
    notes: dict[int, str] = field(default_factory=dict)  # a status's description, when the codes' are not enough


class Error(msgspec.Struct):
    """Every error answer (ingest_api/responses.py); OFREP answers its own `OfrepFailure`."""

    error: Annotated[str, Meta(description="Machine-readable code (the catalogue: eventtrack/errors.py).")]
    detail: str
    fields: Annotated[dict[str, Any], Meta(description="The fields concerned, with what is wrong with each.")]


class Page(msgspec.Struct):
    """A page of a newest-first listing; `next` and `previous` are links to the neighbouring pages."""

    next: str | None
    previous: str | None
    results: list[dict[str, Any]]


# Reading a JSON body (decode.py): its type, encoding, size and JSON.
BODY_ERRORS = ("unsupported_media_type", "unsupported_encoding", "payload_too_large", "invalid_gzip", "invalid_json")
# An event through the capture pipeline (capture_pipeline.py, validation.py), and a batch of them.
CAPTURE_ERRORS = (
    *BODY_ERRORS,
    "not_an_object",
    "invalid_event",
    "validation_error",
    "too_deep",
    "invalid_number",
    "too_old",
    "event_too_large",
    "invalid_api_key",
    "service_unavailable",
)
BATCH_ERRORS = (*CAPTURE_ERRORS, "invalid_batch", "empty_batch", "batch_too_large")

# The errors of every admin operation, and of one that reads a body (admin.http.json_object) or looks up an
# integer id in its path (admin.http.path_id).
ADMIN_ERRORS = ("invalid_parameter", "unauthorized", "service_unavailable")
ADMIN_BODY_ERRORS = (*ADMIN_ERRORS, "invalid_json", "not_an_object", "validation_error", "payload_too_large")
NOT_FOUND = ("not_found",)
