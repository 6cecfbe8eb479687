"""The one capture pipeline: every ingest route decodes its protocol's body, then comes here.

route (decode; translate each event into the native shape) → `capture_events`: batch checks → validate
each event → dead-letter the refused ones → the group-commit sink → what the route answers with.

The native capture and batch (routes/capture.py) and the PostHog capture (posthog/capture.py) go through
`capture_events`; the session routes (routes/sessions.py), which write their own table rather than the
event sink, share its refusals (`refuse_body`, `refuse_event`) and the 503 of a database that cannot
commit. A refusal's status is its code's, from the catalogue (errors.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from starlette.requests import Request

from eventtrack.client_ip import client_host, stored_client_ip
from eventtrack.errors import ApiError, DatabaseUnavailable, EventInvalid, unavailable
from ingest_api.dead_letter import Refusal, payload_json, reject_row
from ingest_api.sink import RejectRow
from ingest_api.state import AppState
from ingest_api.validation import (
    EventRow,
    batch_size_error,
    normalize_event,
    parse_batch_sent_at,
)

# A protocol's event → the native event dict `normalize_event` reads (pure; `received_at` is "now").
Translate = Callable[[Any, datetime], Any]


@dataclass(slots=True)
class Captured:
    """What became of a request's events, for the protocol's answer."""

    rows: list[EventRow]  # the accepted events as stored, in request order
    accepted: list[Any]  # the native events of `rows` (same order)
    refused: list[dict[str, Any]]  # per refused event: index, error, detail, fields
    warnings: list[dict[str, Any]]  # per accepted event with warnings: index, warnings


async def capture_events(
    request: Request,
    state: AppState,
    endpoint: str,
    received_at: datetime,
    events: list[Any],
    *,
    raw: bytes,
    sanitize: bool,
    batch_field: str | None,
    sent_at: Any = None,
    single: bool,
    translate: Translate | None = None,
) -> Captured:
    """Validates, dead-letters and stores a request's events; returns what became of them.

    `batch_field`: the body field of a batch (checked for size, with its `sent_at`); None for one event
    sent alone (native /capture/). `single`: the request's only event: refused with its 4xx rather than
    listed. `raw`: the body as received, kept when the whole request is refused. Dead letters keep each
    event as the client sent it, before `translate`.
    """
    batch_sent_at = None
    if batch_field is not None:
        size_error = batch_size_error(events, state.settings.max_batch_events, batch_field)
        if size_error is not None:
            await refuse_body(request, state, endpoint, received_at, size_error, raw)
        try:
            batch_sent_at = parse_batch_sent_at(sent_at)
        except EventInvalid as invalid:
            await refuse_body(request, state, endpoint, received_at, invalid.error(), raw)
        request.app.state.metrics.batch_size.observe(len(events))

    limits = state.limits(received_at)
    captured = Captured([], [], [], [])
    rejects: list[RejectRow] = []
    for index, event in enumerate(events):
        native = event if translate is None else translate(event, received_at)
        try:
            row = normalize_event(
                native, received_at=received_at, batch_sent_at=batch_sent_at, limits=limits, sanitize=sanitize
            )
        except EventInvalid as invalid:
            if single:
                await refuse_event(request, state, endpoint, received_at, invalid, event)
            rejects.append(event_reject(request, state, endpoint, received_at, invalid, event, index))
            captured.refused.append(
                {"index": index, "error": invalid.code, "detail": invalid.detail, "fields": invalid.fields}
            )
            continue
        captured.rows.append(row)
        captured.accepted.append(native)
        if row.warnings:
            captured.warnings.append({"index": index, "warnings": list(row.warnings)})
    await write_rows(state, captured.rows, rejects)
    return captured


def remote_addr(request: Request) -> str | None:
    """The client address as it may be stored (dead letters): None unless STORE_CLIENT_IP, then truncated."""
    settings = request.app.state.eventtrack.settings
    return stored_client_ip(client_host(request), store=settings.store_client_ip, prefixes=settings.client_ip_prefixes)


def event_reject(
    request: Request,
    state: AppState,
    endpoint: str,
    received_at: datetime,
    invalid: EventInvalid,
    event: Any,
    index: int | None,
) -> RejectRow:
    """The dead-letter row of one refused event (`index`: its place in a batch; None for a single event)."""
    payload = payload_json(event)
    return _dead_letter_row(request, state, endpoint, received_at, invalid, payload, len(payload), index)


def _dead_letter_row(
    request: Request,
    state: AppState,
    endpoint: str,
    received_at: datetime,
    refusal: Refusal,
    payload: bytes,
    size: int,
    index: int | None,
) -> RejectRow:
    return reject_row(
        received_at=received_at,
        endpoint=endpoint,
        refusal=refusal,
        payload=payload,
        payload_bytes=size,
        index=index,
        keep=state.settings.dead_letter_payload_bytes,
        remote_addr=remote_addr(request),
    )


def refuse_while_overloaded(state: AppState, rows: int | None = None) -> None:
    """503 before the body is even read when the write queue is full (`rows`: the request's events when known
    without reading it). Under a spike most requests are refused; parsing and validating each refused body
    first would take the CPU the accepted ones need."""
    try:
        state.sink.refuse_if_overloaded(rows)
    except DatabaseUnavailable:
        raise unavailable(state.settings.retry_after_seconds) from None


async def write_rows(state: AppState, rows, rejects) -> None:
    """Accepted events and dead-letter rows to the sink; 503 (the client must retry) when it cannot commit."""
    try:
        await state.sink.write(rows, rejects)
    except DatabaseUnavailable:
        raise unavailable(state.settings.retry_after_seconds) from None


async def refuse_event(
    request: Request, state: AppState, endpoint: str, received_at: datetime, invalid: EventInvalid, event: Any
) -> NoReturn:
    """A request's only event refused: keep it in the dead letters, then answer its 4xx."""
    await write_rows(state, (), (event_reject(request, state, endpoint, received_at, invalid, event, None),))
    raise invalid.error() from None


async def refuse_body(
    request: Request,
    state: AppState,
    endpoint: str,
    received_at: datetime,
    err: ApiError,
    raw: bytes,
    raw_size: int | None = None,
) -> NoReturn:
    """A whole request refused: keep its body (`raw_size`: its full size, when only the start of it was read)
    in the dead letters, then answer `err`. When the sink cannot keep it: a 503, so the client retries rather
    than believe it was recorded."""
    row = _dead_letter_row(
        request, state, endpoint, received_at, err, raw, len(raw) if raw_size is None else raw_size, None
    )
    await write_rows(state, (), (row,))
    raise err
