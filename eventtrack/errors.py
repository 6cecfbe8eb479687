"""Errors are values: a status, a machine code, a human sentence and the fields concerned.

`CATALOGUE` is the one table of error codes: each code's HTTP status and what it means (the default
detail). Raise `ApiError.of(code, detail, fields)`; the status comes from the table, so a code answers
with the same status on every endpoint. `EventInvalid` (one refused event) carries only a code: its
status is the catalogue's too.

HTTP-free, so every floor may raise and read these; the HTTP answer of an `ApiError` is built by
ingest_api/responses.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorCode:
    status: int
    detail: str  # what the code means; the answer's `detail` unless the call site says more


CATALOGUE: dict[str, ErrorCode] = {
    # A request body that cannot be read (kept in the dead letters on the ingest endpoints).
    "unsupported_media_type": ErrorCode(415, "The Content-Type cannot be read; send application/json."),
    "unsupported_encoding": ErrorCode(415, "The Content-Encoding (or PostHog `compression`) is not supported."),
    "payload_too_large": ErrorCode(413, "The request body is larger than the limit."),
    "invalid_gzip": ErrorCode(400, "The gzip body could not be decompressed."),
    "invalid_json": ErrorCode(400, "The body is not valid JSON."),
    "invalid_form": ErrorCode(400, "The form body cannot be read."),
    "invalid_base64": ErrorCode(400, "The body is not valid base64."),
    "client_disconnected": ErrorCode(400, "The client closed the connection before the body was complete."),
    "not_an_object": ErrorCode(400, "The body must be a JSON object."),
    # A batch refused whole.
    "invalid_batch": ErrorCode(400, "The body carries no list of events."),
    "empty_batch": ErrorCode(400, "The batch holds no events."),
    "batch_too_large": ErrorCode(400, "The batch holds more events than the limit."),
    # One event (or session) refused; in a batch the others go on.
    "invalid_event": ErrorCode(400, "An event must be a JSON object."),
    "validation_error": ErrorCode(400, "Some fields are invalid (see `fields`)."),
    "too_deep": ErrorCode(400, "The properties are nested deeper than the limit."),
    "invalid_number": ErrorCode(400, "A number is NaN, infinite or beyond a double."),
    "too_old": ErrorCode(400, "The time is older than the retention window."),
    "event_too_large": ErrorCode(413, "The event is larger than the limit."),
    "end_before_start": ErrorCode(400, "A session cannot end before it started."),
    # Sessions.
    "session_not_found": ErrorCode(404, "No session has this id."),
    "session_exists": ErrorCode(409, "A session with this id exists for another distinct_id."),
    # Who may call, and how often.
    "invalid_api_key": ErrorCode(401, "A project write key is required (api_key, token or X-API-Key)."),
    "unauthorized": ErrorCode(401, "A valid admin API key is required: send `Authorization: Bearer <key>`."),
    "rate_limited": ErrorCode(429, "Too many requests; retry later."),
    "service_unavailable": ErrorCode(503, "The database is unavailable; retry later."),
    # Reads and the admin API.
    "not_found": ErrorCode(404, "Nothing has this id."),
    "method_not_allowed": ErrorCode(405, "The method is not allowed on this path."),
    "invalid_parameter": ErrorCode(400, "A parameter is invalid (see `fields`)."),
    "invalid_cursor": ErrorCode(400, "The cursor is not valid: pass the `next` or `previous` link of a page as it is."),
    "internal_error": ErrorCode(500, "An unexpected error occurred; it has been logged."),
    # OFREP (its own answer shape, `errorCode` / `errorDetails`, and the codes of the OFREP specification).
    "PARSE_ERROR": ErrorCode(400, "The body is not valid JSON."),
    "INVALID_CONTEXT": ErrorCode(400, "The body must be a JSON object with a `context` object."),
    "TARGETING_KEY_MISSING": ErrorCode(400, "The context needs a `targetingKey` (the user's distinct_id)."),
    "FLAG_NOT_FOUND": ErrorCode(404, "No flag has this key."),
}


def status_of(code: str) -> int:
    return CATALOGUE[code].status


# Keyword-only: `ApiError(400, "code", ...)` fails at once; build errors with `ApiError.of(code, ...)`. The one
# answer whose status is not the catalogue's is Starlette's own HTTPException (ingest_api/app.py).
@dataclass(kw_only=True)
class ApiError(Exception):
    status: int
    code: str
    detail: str
    fields: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        code: str,
        detail: str | None = None,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiError:
        """The error `code` of the catalogue, with its status (and its default detail unless `detail` is given)."""
        kind = CATALOGUE[code]
        return cls(
            status=kind.status,
            code=code,
            detail=kind.detail if detail is None else detail,
            fields=fields or {},
            headers=headers or {},
        )

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, "fields": self.fields}


class EventInvalid(Exception):
    """One event refused by validation; in a batch the others go on."""

    def __init__(self, code: str, detail: str, fields: dict[str, str]):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = fields

    def error(self) -> ApiError:
        """The answer when this event is the request's only one (or its refusal refuses the whole request)."""
        return ApiError.of(self.code, self.detail, self.fields)


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not commit in time."""


def unavailable(retry_after: int, detail: str | None = None) -> ApiError:
    return ApiError.of("service_unavailable", detail, headers={"Retry-After": str(retry_after)})


CLIENT_DISCONNECTED = "client_disconnected"


def client_disconnected() -> ApiError:
    """The client closed the connection before its body was complete: nobody reads this answer, it is only counted."""
    return ApiError.of(CLIENT_DISCONNECTED, fields={"body": "incomplete"})
