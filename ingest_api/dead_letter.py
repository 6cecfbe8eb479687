"""Building dead-letter rows: what was refused, why, and its (truncated) payload."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson

from ingest_api.sink import RejectRow


def reject_body(
    *,
    received_at: datetime,
    endpoint: str,
    code: str,
    detail: str,
    fields: dict[str, Any],
    raw: bytes,
    raw_size: int,
    keep: int,
    remote_addr: str | None,
) -> RejectRow:
    return RejectRow(
        received_at=received_at,
        endpoint=endpoint,
        reason=code,
        detail=detail,
        fields=_json(fields),
        event_index=None,
        payload=raw[:keep],
        payload_bytes=raw_size,
        # Also when nothing was read at all (a Content-Length over the limit is refused from the header).
        payload_truncated=raw_size > min(len(raw), keep),
        remote_addr=remote_addr,
    )


def reject_event(
    *,
    received_at: datetime,
    endpoint: str,
    code: str,
    detail: str,
    fields: dict[str, Any],
    event: Any,
    index: int | None,
    keep: int,
    remote_addr: str | None,
) -> RejectRow:
    payload = _json(event)
    return RejectRow(
        received_at=received_at,
        endpoint=endpoint,
        reason=code,
        detail=detail,
        fields=_json(fields),
        event_index=index,
        payload=payload[:keep],
        payload_bytes=len(payload),
        payload_truncated=len(payload) > keep,
        remote_addr=remote_addr,
    )


def _json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        # Lone surrogates or NaN from the tolerant parser: escape them so the bytes stay replayable.
        return json.dumps(value, ensure_ascii=True, default=str).encode()
