"""Replaying dead letters: the stored payload goes through the capture path again (decode,
validate and normalise, then the group-commit sink); rows that are valid now are marked replayed.

Only single events of the native endpoints are replayable: a /capture/ body, or
one event of a /batch/ (event_index set). Whole refused bodies (a batch over the
size limit, bytes that are not JSON) and truncated payloads are not: they would
be refused again, or are no longer complete. A batch event is replayed without
its batch's `sent_at`, which the dead letter does not keep.

An event without its own `uuid` gets one derived from the dead letter's id, so
replaying the same row twice (a retry after a crash between the write and the
mark) is deduplicated like any resent event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from eventtrack.errors import ApiError, EventInvalid
from ingest_api.decode import parse_json
from ingest_api.state import AppState
from ingest_api.validation import EventRow, Limits, normalize_event

REPLAY_NAMESPACE = uuid.UUID("6d0e8f7e-3c4b-4b39-9a53-8d7d7e1f2a10")
MAX_PER_REPLAY = 500

_PENDING = sa.text(
    """
    SELECT id, received_at, endpoint, event_index, payload, payload_truncated
    FROM rejected_events
    WHERE replayed_at IS NULL AND id = ANY(:ids)
    ORDER BY id
    """
)
_MARK = sa.text("UPDATE rejected_events SET replayed_at = now() WHERE id = ANY(:ids) AND replayed_at IS NULL")


@dataclass
class ReplayOutcome:
    replayed: list[int] = field(default_factory=list)
    still_invalid: dict[int, str] = field(default_factory=dict)  # id -> why
    not_replayable: dict[int, str] = field(default_factory=dict)


def is_replayable(endpoint: str, event_index: int | None, payload_truncated: bool) -> bool:
    return not payload_truncated and (endpoint == "capture" or (endpoint == "batch" and event_index is not None))


def revalidate(row: Any, limits: Limits) -> EventRow | str:
    """One dead letter through decode + validate (pure): the event row, or why it is still refused."""
    try:
        value, needs_sanitizing = parse_json(bytes(row.payload))
    except ApiError as err:
        return err.code
    if not isinstance(value, dict):
        return "not_an_object"
    if "uuid" not in value:
        value = {**value, "uuid": str(uuid.uuid5(REPLAY_NAMESPACE, f"rejected_events/{row.id}"))}
    try:
        return normalize_event(
            value, received_at=row.received_at, batch_sent_at=None, limits=limits, sanitize=needs_sanitizing
        )
    except EventInvalid as invalid:
        return invalid.code


async def replay(state: AppState, ids: Sequence[int]) -> ReplayOutcome:
    outcome = ReplayOutcome()
    ids = list(dict.fromkeys(i for i in ids if 0 < i < 2**63))[:MAX_PER_REPLAY]
    if not ids:
        return outcome
    async with state.engine.connect() as conn:
        rows = (await conn.execute(_PENDING, {"ids": ids})).all()
    limits = state.limits(datetime.now(UTC))
    events: list[EventRow] = []
    for row in rows:
        if not is_replayable(row.endpoint, row.event_index, row.payload_truncated):
            outcome.not_replayable[row.id] = "truncated payload" if row.payload_truncated else "whole request body"
            continue
        result = revalidate(row, limits)
        if isinstance(result, str):
            outcome.still_invalid[row.id] = result
        else:
            events.append(result)
            outcome.replayed.append(row.id)
    if events:
        await state.sink.write(events, ())  # committed when it returns
        async with state.engine.begin() as conn:
            await conn.execute(_MARK, {"ids": outcome.replayed})
    return outcome
