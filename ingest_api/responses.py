"""The JSON answer of an `ApiError`: `{"error", "detail", "fields"}` with the catalogue's status."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from eventtrack.errors import ApiError


def error_response(err: ApiError) -> Response:
    return Response(
        orjson.dumps(err.body()),
        status_code=err.status,
        media_type="application/json",
        headers=err.headers or None,
    )
