"""Errors are values: a status, a machine code, a human sentence and the fields concerned."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.responses import Response


@dataclass
class ApiError(Exception):
    status: int
    code: str
    detail: str
    fields: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, "fields": self.fields}


class EventInvalid(Exception):
    """One event refused by validation; in a batch the others go on."""

    def __init__(self, code: str, detail: str, fields: dict[str, str]):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = fields


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not commit in time."""


def error_response(err: ApiError) -> Response:
    return Response(
        orjson.dumps(err.body()),
        status_code=err.status,
        media_type="application/json",
        headers=err.headers or None,
    )


def unavailable(retry_after: int, detail: str = "The database is unavailable; retry later.") -> ApiError:
    return ApiError(503, "service_unavailable", detail, headers={"Retry-After": str(retry_after)})


CLIENT_DISCONNECTED = "client_disconnected"


def client_disconnected() -> ApiError:
    """The client closed the connection before its body was complete: nobody reads this answer, it is only counted."""
    return ApiError(400, CLIENT_DISCONNECTED, "The client closed the connection before the body was complete.", {"body": "incomplete"})
