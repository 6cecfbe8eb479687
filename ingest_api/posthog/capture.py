"""PostHog-compatible capture: POST /batch/, /e/, /capture/, /i/v0/e/, /track/.

route → decode (ingest_api/posthog/decode.py, native size limits) → the capture
pipeline (capture_pipeline.py), which translates each event (translate.py) and
then validates, dead-letters and stores it like a native one. Success is
exactly HTTP 200 `{"status": 1}`, which is what PostHog SDKs check.

In a batch (or array) an invalid event is dead-lettered and the others are
stored, as on the native /batch/ (SDKs drop or retry whole requests, so one bad
event must not cost the rest). A single invalid event is refused with the
native status and error code.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.errors import ApiError
from ingest_api.capture_pipeline import capture_events, refuse_body, refuse_while_overloaded
from ingest_api.decode import BodyRefused, parse_json, read_limited
from ingest_api.persons import apply_person_updates
from ingest_api.posthog.decode import decode_request_body
from ingest_api.posthog.translate import NotAPayload, person_update, read_payload, translate_event
from ingest_api.state import AppState
from ingest_api.write_keys import require_write_key

ENDPOINT = "posthog"
OK = orjson.dumps({"status": 1})


async def capture(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    refuse_while_overloaded(state)
    settings = state.settings
    received_at = datetime.now(UTC)
    limit = settings.max_batch_body_bytes
    raw = b""
    try:
        raw = await read_limited(
            request.stream(), request.headers.get("content-length"), limit, settings.dead_letter_payload_bytes
        )
        body = decode_request_body(raw, request, limit)
        value, sanitize = parse_json(body)
    except BodyRefused as refused:
        await refuse_body(request, state, ENDPOINT, received_at, refused.error, refused.raw, refused.raw_size)
    except ApiError as err:
        await refuse_body(request, state, ENDPOINT, received_at, err, raw)
    try:
        payload = read_payload(value)
    except NotAPayload as exc:
        require_write_key(request)
        err = ApiError.of("invalid_batch", str(exc), {"batch": "must be a list of events"})
        await refuse_body(request, state, ENDPOINT, received_at, err, raw)
    require_write_key(request, {"api_key": payload.token})

    captured = await capture_events(
        request,
        state,
        ENDPOINT,
        received_at,
        payload.events,
        raw=raw,
        sanitize=sanitize,
        batch_field="batch",
        sent_at=payload.sent_at,
        single=not payload.is_batch,
        translate=translate_event,
    )
    people = []
    for native, row in zip(captured.accepted, captured.rows):
        update = person_update(native, row.distinct_id, row.timestamp)
        if update is not None:
            people.append(update)
    if people:
        await apply_person_updates(state, people)
    return Response(OK, media_type="application/json")
