"""Building dead-letter rows: what was refused, why, and its (truncated) payload."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

import orjson

from ingest_api.sink import RejectRow


class Refusal(Protocol):
    """Why something was refused: an `ApiError` (a whole body) or an `EventInvalid` (one event)."""

    code: str
    detail: str
    fields: dict[str, Any]


def reject_row(
    *,
    received_at: datetime,
    endpoint: str,
    refusal: Refusal,
    payload: bytes,
    payload_bytes: int,
    index: int | None,
    keep: int,
    remote_addr: str | None,
) -> RejectRow:
    """The dead-letter row of a refused body (`index` None) or event (its place in a batch, or None alone).

    `payload`: what was refused as bytes, or its start when only that was read; `payload_bytes`: its full size.
    """
    return RejectRow(
        received_at=received_at,
        endpoint=endpoint,
        reason=refusal.code,
        detail=refusal.detail,
        fields=payload_json(refusal.fields),
        event_index=index,
        payload=payload[:keep],
        payload_bytes=payload_bytes,
        # Also when nothing was read at all (a Content-Length over the limit is refused from the header).
        payload_truncated=payload_bytes > min(len(payload), keep),
        remote_addr=remote_addr,
    )


def payload_json(value: Any) -> bytes:
    """A refused event (or its fields) as JSON bytes, whatever the tolerant parser let through."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        # Lone surrogates or NaN from the tolerant parser: escape them so the bytes stay replayable.
        return json.dumps(value, ensure_ascii=True, default=str).encode()
