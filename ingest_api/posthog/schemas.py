"""The PostHog-compatible bodies and operations, declared (the OpenAPI document is generated from them).

The bodies are read by posthog/decode.py and translate.py, then judged by the one capture pipeline.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ingest_api.declarations import (
    BATCH_ERRORS,
    BODY_ERRORS,
    RECORD_EXPOSURE,
    Operation,
    Response,
    Timestamp,
    query,
)
from ingest_api.posthog.routes import CAPTURE_PATHS

DistinctId = str | int


class PosthogEvent(msgspec.Struct, kw_only=True):
    event: str | None = None
    distinct_id: DistinctId | None = None
    dollar_distinct_id: DistinctId | None = msgspec.field(default=None, name="$distinct_id")
    properties: dict[str, Any] | None = None
    timestamp: Timestamp | None = None
    uuid: Annotated[str, Meta(extra_json_schema={"format": "uuid"})] | None = None
    offset: (
        Annotated[int, Meta(description="Milliseconds before the request was sent; wins over timestamp.")] | None
    ) = None
    set: dict[str, Any] | None = msgspec.field(default=None, name="$set")
    set_once: dict[str, Any] | None = msgspec.field(default=None, name="$set_once")


class PosthogBatch(msgspec.Struct, kw_only=True):
    batch: list[PosthogEvent]
    api_key: str | None = None
    token: str | None = None
    sent_at: Timestamp | None = None
    historical_migration: bool | None = None


class PosthogForm(msgspec.Struct, kw_only=True):
    """posthog-js' form body: the JSON (maybe base64 or gzip) in `data`."""

    data: str | None = None


class PosthogCaptured(msgspec.Struct):
    status: Literal[1]


class PosthogFlagsRequest(msgspec.Struct, kw_only=True):
    distinct_id: DistinctId
    api_key: str | None = None
    token: str | None = None
    person_properties: dict[str, Any] | None = None
    groups: dict[str, Any] | None = None
    group_properties: dict[str, Any] | None = None
    flag_keys_to_evaluate: list[str] | None = None


class PosthogFlagsResponse(msgspec.Struct, kw_only=True):
    """`flags` (per-flag records: /flags v2+, /decide v4+) or `featureFlags` + `featureFlagPayloads` (older versions)."""

    flags: dict[str, dict[str, Any]] | None = None
    featureFlags: dict[str, bool | str] | None = None
    featureFlagPayloads: dict[str, str] | None = None
    errorsWhileComputingFlags: bool | None = None
    requestId: str | None = None


COMPRESSION = query(
    "compression",
    Literal["gzip", "gzip-js", "base64"],
    "How the body is encoded (gzip is also detected by its magic bytes).",
)
# A form body, base64 and the `compression` parameter are PostHog's only.
POSTHOG_ERRORS = (*BATCH_ERRORS, "invalid_form", "invalid_base64")
FLAGS_ERRORS = (
    *BODY_ERRORS,
    "invalid_form",
    "invalid_base64",
    "not_an_object",
    "validation_error",
    "invalid_api_key",
    "service_unavailable",
)


def _flags(name: str, versions: str) -> Operation:
    return Operation(
        "post",
        f"/{name}/",
        f"posthog{name.capitalize()}",
        f"PostHog-compatible flag evaluation ({versions})",
        (Response(200, "Every active flag, evaluated.", PosthogFlagsResponse),),
        errors=FLAGS_ERRORS,
        request=PosthogFlagsRequest,
        params=(query("v", description=versions), COMPRESSION, RECORD_EXPOSURE),
    )


OPERATIONS = (
    *(
        Operation(
            "post",
            url,
            "posthogCapture" + "".join(part.capitalize() for part in url.strip("/").split("/")),
            "PostHog-compatible capture (batch, array of events, or one event; gzip, base64 or form `data=`)",
            (Response(200, "Committed; invalid events of a batch are dead-lettered.", PosthogCaptured),),
            errors=POSTHOG_ERRORS,
            request=(PosthogBatch, list[PosthogEvent], PosthogEvent),
            form=PosthogForm,
            params=(COMPRESSION,),
        )
        for url in CAPTURE_PATHS
    ),
    _flags("flags", "v=2 or later (default): per-flag records; v=1: maps"),
    _flags("decide", "v=4: per-flag records; v=3 and older: maps"),
)
