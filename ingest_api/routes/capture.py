"""POST /api/v1/analytics/capture/ (one event) and /batch/ (many): the native body, then the capture pipeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.errors import ApiError
from ingest_api.capture_pipeline import capture_events, refuse_body, refuse_while_overloaded
from ingest_api.routes.body import read_json_object
from ingest_api.state import AppState

CAPTURE = "capture"
BATCH = "batch"
_ONE_EVENT = "The body must be a JSON object (one event)."
_EVENTS_OBJECT = "The body must be a JSON object with an `events` list."


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def capture(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    refuse_while_overloaded(state, rows=1)
    received_at = datetime.now(UTC)
    limit = state.settings.max_capture_body_bytes
    body = await read_json_object(request, state, CAPTURE, limit, received_at, not_an_object=_ONE_EVENT)
    captured = await capture_events(
        request,
        state,
        CAPTURE,
        received_at,
        [body.value],
        raw=body.raw,
        sanitize=body.needs_sanitizing,
        batch_field=None,
        single=True,
    )
    row = captured.rows[0]
    return _json({"accepted": 1, "uuid": str(row.uuid), "warnings": list(row.warnings)})


async def batch(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    refuse_while_overloaded(state)
    received_at = datetime.now(UTC)
    limit = state.settings.max_batch_body_bytes
    body = await read_json_object(request, state, BATCH, limit, received_at, not_an_object=_EVENTS_OBJECT)
    value = body.value
    events = value.get("events", value.get("batch"))
    if not isinstance(events, list):
        err = ApiError.of(
            "invalid_batch", "The body must carry a list under `events` (or `batch`).", {"events": "must be a list"}
        )
        await refuse_body(request, state, BATCH, received_at, err, body.raw)
    captured = await capture_events(
        request,
        state,
        BATCH,
        received_at,
        events,
        raw=body.raw,
        sanitize=body.needs_sanitizing,
        batch_field="events",
        sent_at=value.get("sent_at"),
        single=False,
    )
    answer: dict[str, Any] = {"accepted": len(captured.rows), "rejected": captured.refused}
    if captured.warnings:
        answer["warnings"] = captured.warnings
    return _json(answer)
