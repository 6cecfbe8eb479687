"""POST /api/v1/analytics/capture/ (one event) and /batch/ (many)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ingest_api.capture_pipeline import event_reject, refuse_event, write_rows
from ingest_api.errors import ApiError, EventInvalid
from ingest_api.routes.body import dead_letter_body, read_json_body
from ingest_api.sink import RejectRow
from ingest_api.state import AppState
from ingest_api.validation import EventRow, batch_size_error, normalize_event, parse_batch_sent_at
from ingest_api.write_keys import require_write_key

CAPTURE = "capture"
BATCH = "batch"


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def capture(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    received_at = datetime.now(timezone.utc)
    body = await read_json_body(request, state, CAPTURE, state.settings.max_capture_body_bytes, received_at)
    require_write_key(request, body.value)
    if not isinstance(body.value, dict):
        err = ApiError(400, "not_an_object", "The body must be a JSON object (one event).", {"body": "must be an object"})
        await dead_letter_body(request, state, CAPTURE, err, body.raw, len(body.raw), received_at)
        raise err
    try:
        row = normalize_event(
            body.value,
            received_at=received_at,
            batch_sent_at=None,
            limits=state.limits(received_at),
            sanitize=body.needs_sanitizing,
        )
    except EventInvalid as invalid:
        await refuse_event(request, state, CAPTURE, received_at, invalid, body.value)
    await write_rows(state, (row,), ())
    return _json({"accepted": 1, "uuid": str(row.uuid), "warnings": list(row.warnings)})


async def batch(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    settings = state.settings
    received_at = datetime.now(timezone.utc)
    body = await read_json_body(request, state, BATCH, settings.max_batch_body_bytes, received_at)
    require_write_key(request, body.value)

    async def refuse(err: ApiError) -> None:
        await dead_letter_body(request, state, BATCH, err, body.raw, len(body.raw), received_at)
        raise err

    value = body.value
    if not isinstance(value, dict):
        await refuse(ApiError(400, "not_an_object", "The body must be a JSON object with an `events` list.", {"body": "must be an object"}))
    events = value.get("events", value.get("batch"))
    if not isinstance(events, list):
        await refuse(ApiError(400, "invalid_batch", "The body must carry a list under `events` (or `batch`).", {"events": "must be a list"}))
    size_error = batch_size_error(events, settings.max_batch_events, "events")
    if size_error is not None:
        await refuse(size_error)
    try:
        batch_sent_at = parse_batch_sent_at(value.get("sent_at"))
    except EventInvalid as invalid:
        await refuse(ApiError(400, invalid.code, invalid.detail, invalid.fields))

    request.app.state.metrics.batch_size.observe(len(events))
    limits = state.limits(received_at)
    rows: list[EventRow] = []
    rejects: list[RejectRow] = []
    refused: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for index, raw_event in enumerate(events):
        try:
            row = normalize_event(
                raw_event,
                received_at=received_at,
                batch_sent_at=batch_sent_at,
                limits=limits,
                sanitize=body.needs_sanitizing,
            )
        except EventInvalid as invalid:
            rejects.append(event_reject(request, state, BATCH, received_at, invalid, raw_event, index))
            refused.append({"index": index, "error": invalid.code, "detail": invalid.detail, "fields": invalid.fields})
            continue
        rows.append(row)
        if row.warnings:
            warnings.append({"index": index, "warnings": list(row.warnings)})
    await write_rows(state, rows, rejects)
    answer: dict[str, Any] = {"accepted": len(rows), "rejected": refused}
    if warnings:
        answer["warnings"] = warnings
    return _json(answer)
