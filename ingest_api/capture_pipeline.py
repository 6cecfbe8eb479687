"""The steps every ingest route shares once its body is decoded: a refused event's dead-letter row and
status, and the write of accepted and refused rows to the group-commit sink.

The native capture (routes/capture.py), the PostHog capture (posthog/capture.py), the session routes
(routes/sessions.py) and refused bodies (routes/body.py) all go through here, so each rule (413 for an
oversized event, 503 when the sink cannot commit) is defined once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from starlette.requests import Request

from ingest_api.dead_letter import reject_event
from ingest_api.errors import ApiError, DatabaseUnavailable, EventInvalid, unavailable
from ingest_api.privacy.ip import client_host, stored_client_ip
from ingest_api.sink import RejectRow
from ingest_api.state import AppState


def remote_addr(request: Request) -> str | None:
    """The client address as it may be stored (dead letters): None unless STORE_CLIENT_IP, then truncated."""
    settings = request.app.state.eventtrack.settings
    return stored_client_ip(client_host(request), store=settings.store_client_ip, prefixes=settings.client_ip_prefixes)


def _status_for(code: str) -> int:
    """The HTTP status of a refused event, by its error code."""
    return 413 if code == "event_too_large" else 400


def event_reject(
    request: Request, state: AppState, endpoint: str, received_at: datetime, invalid: EventInvalid, event: Any, index: int | None
) -> RejectRow:
    """The dead-letter row of one refused event (`index`: its place in a batch; None for a single event)."""
    return reject_event(
        received_at=received_at,
        endpoint=endpoint,
        code=invalid.code,
        detail=invalid.detail,
        fields=invalid.fields,
        event=event,
        index=index,
        keep=state.settings.dead_letter_payload_bytes,
        remote_addr=remote_addr(request),
    )


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
    raise ApiError(_status_for(invalid.code), invalid.code, invalid.detail, invalid.fields) from None
