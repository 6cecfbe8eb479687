"""PostHog-compatible capture: POST /batch/, /e/, /capture/, /i/v0/e/, /track/.

route → decode (ingest_api/posthog/decode.py, native size limits) → translate
each event (translate.py) → the native validator → the native sink. Success is
exactly HTTP 200 `{"status": 1}`, which is what PostHog SDKs check.

In a batch (or array) an invalid event is dead-lettered and the others are
stored, as on the native /batch/ (SDKs drop or retry whole requests, so one bad
event must not cost the rest). A single invalid event is refused with the
native status and error code.
"""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ingest_api.capture_pipeline import event_reject, refuse_event, write_rows
from ingest_api.decode import BodyRefused, parse_json, read_limited
from ingest_api.errors import ApiError, EventInvalid
from ingest_api.persons import apply_person_updates
from ingest_api.posthog.decode import decode_body
from ingest_api.posthog.translate import NotAPayload, PersonUpdate, person_update, read_payload, translate_event
from ingest_api.routes.body import dead_letter_body
from ingest_api.sink import RejectRow
from ingest_api.state import AppState
from ingest_api.validation import EventRow, batch_size_error, normalize_event, parse_batch_sent_at
from ingest_api.write_keys import require_write_key

ENDPOINT = "posthog"
OK = orjson.dumps({"status": 1})


async def capture(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    settings = state.settings
    received_at = datetime.now(timezone.utc)
    limit = settings.max_batch_body_bytes
    raw = b""

    async def refuse(err: ApiError, size: int | None = None) -> None:
        await dead_letter_body(request, state, ENDPOINT, err, raw, len(raw) if size is None else size, received_at)
        raise err

    try:
        raw = await read_limited(request.stream(), request.headers.get("content-length"), limit, settings.dead_letter_payload_bytes)
        body = decode_body(
            raw,
            content_type=request.headers.get("content-type"),
            encoding_header=request.headers.get("content-encoding"),
            compression=request.query_params.get("compression"),
            limit=limit,
        )
        value, sanitize = parse_json(body)
    except BodyRefused as refused:
        raw = refused.raw
        await refuse(refused.error, refused.raw_size)
    except ApiError as err:
        await refuse(err)
    try:
        payload = read_payload(value)
    except NotAPayload as exc:
        require_write_key(request)
        await refuse(ApiError(400, "invalid_batch", str(exc), {"batch": "must be a list of events"}))
    require_write_key(request, {"api_key": payload.token})

    events = payload.events
    size_error = batch_size_error(events, settings.max_batch_events, "batch")
    if size_error is not None:
        await refuse(size_error)
    try:
        batch_sent_at = parse_batch_sent_at(payload.sent_at)
    except EventInvalid as invalid:
        await refuse(ApiError(400, invalid.code, invalid.detail, invalid.fields))

    request.app.state.metrics.batch_size.observe(len(events))
    limits = state.limits(received_at)
    rows: list[EventRow] = []
    rejects: list[RejectRow] = []
    people: list[PersonUpdate] = []
    for index, event in enumerate(events):
        native = translate_event(event, now=received_at)
        try:
            row = normalize_event(native, received_at=received_at, batch_sent_at=batch_sent_at, limits=limits, sanitize=sanitize)
        except EventInvalid as invalid:
            if not payload.is_batch:
                await refuse_event(request, state, ENDPOINT, received_at, invalid, event)
            rejects.append(event_reject(request, state, ENDPOINT, received_at, invalid, event, index))
            continue
        rows.append(row)
        update = person_update(native, row.distinct_id, row.timestamp)
        if update is not None:
            people.append(update)
    await write_rows(state, rows, rejects)
    if people:
        await apply_person_updates(state, people)
    return Response(OK, media_type="application/json")
