"""The bodies of the native routes (capture, batch, sessions, public flags), declared as types.

The OpenAPI document's schemas are generated from these (ingest_api/openapi.py). The bodies are still read
by validation.py, whose answers (codes, `fields` messages, per-event refusal) are the API contract: these
types describe them and take their limits from the same constants (bench/schema_libs.py, docs/performance.md
"Body declarations" say why the hot path keeps its own validator).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import Meta

from eventtrack.settings import Settings
from ingest_api.declarations import (
    BATCH_ERRORS,
    CAPTURE_ERRORS,
    ETAG,
    RECORD_EXPOSURE,
    Operation,
    PositiveId,
    Response,
    Timestamp,
    path,
    query,
)
from ingest_api.routes.flags import PUBLIC
from ingest_api.routing import API
from ingest_api.validation import MAX_ID_LENGTH

Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
OptionalId = Annotated[str, Meta(max_length=MAX_ID_LENGTH)] | None
DistinctId = Annotated[Id | int, Meta(description="The user; a number is turned into a string.")]
Properties = dict[str, Any]
Time = Annotated[Timestamp, Meta(description="No zone means UTC.")]
SentAt = Annotated[
    Timestamp | None, Meta(description="The client's clock when the request was sent; used for clock-skew correction.")
]
# The default of the setting (MAX_BATCH_EVENTS); a deployment may change it.
MAX_BATCH_EVENTS: int = Settings.__dataclass_fields__["max_batch_events"].default


class Event(msgspec.Struct, kw_only=True):
    """One event (native /capture/, and each item of /batch/)."""

    distinct_id: DistinctId
    event_type: Annotated[Id, Meta(description="The event name (`event` is accepted as an alias).")]
    event: Annotated[Id, Meta(description="Alias of event_type.")] | None = None
    properties: Properties | None = None
    device_id: OptionalId = None
    session_id: OptionalId = None
    app_version: OptionalId = None
    os_name: OptionalId = None
    os_version: OptionalId = None
    timestamp: Annotated[
        Timestamp | None, Meta(description="When it happened, by the client's clock. No zone means UTC.")
    ] = None
    sent_at: SentAt = None
    uuid: Annotated[UUID | None, Meta(description="Dedup key; assigned (UUIDv7) when missing.")] = None


class Batch(msgspec.Struct, kw_only=True):
    events: Annotated[list[Event], Meta(min_length=1, max_length=MAX_BATCH_EVENTS)] | None = None
    batch: Annotated[list[Event], Meta(description="Alias of events (PostHog SDKs).")] | None = None
    sent_at: SentAt = None


class CaptureAccepted(msgspec.Struct):
    accepted: int
    uuid: UUID
    warnings: list[str]


class Refused(msgspec.Struct):
    """One refused event of a batch: its index and the error it would have answered alone."""

    index: int
    error: str
    detail: str
    fields: dict[str, str]


class BatchAccepted(msgspec.Struct, kw_only=True):
    accepted: int
    rejected: list[Refused]
    warnings: list[dict[str, Any]] | None = None


class SessionStart(msgspec.Struct, kw_only=True):
    distinct_id: DistinctId
    session_id: UUID | None = None
    device_id: OptionalId = None
    app_version: OptionalId = None
    os_name: OptionalId = None
    os_version: OptionalId = None
    properties: Properties | None = None
    started_at: Time | None = None
    sent_at: SentAt = None


class SessionStarted(msgspec.Struct):
    session_id: UUID
    started_at: Timestamp


class SessionEnd(msgspec.Struct, kw_only=True):
    ended_at: Time | None = None
    sent_at: SentAt = None


class SessionEnded(msgspec.Struct):
    session_id: UUID
    started_at: Timestamp
    ended_at: Timestamp
    duration_seconds: float


class PublicFlag(msgspec.Struct, forbid_unknown_fields=True):
    """The public endpoints' view of a flag (routes/flags.py `public_flag`): no targeting, rollout or payload."""

    id: int
    key: str
    name: str
    active: bool
    variant_keys: list[str]


class PublicFlagList(msgspec.Struct):
    results: list[PublicFlag]


class UserContext(msgspec.Struct, kw_only=True):
    distinct_id: DistinctId
    device_id: OptionalId = None
    app_version: OptionalId = None
    os_name: OptionalId = None
    os_version: OptionalId = None
    properties: Properties | None = None


class FlagOutcome(msgspec.Struct):
    active: bool
    variant: str | None
    payload: Any


# Flag key -> the user's outcome.
FlagsForUser = dict[str, FlagOutcome]


_SESSION_ID = path("session_id", UUID)
_FLAG_ID = path("flag_id", PositiveId)
_USER_QUERY = (
    query("distinct_id", Id, required=True),
    *(query(name) for name in ("device_id", "app_version", "os_name", "os_version")),
    query("properties", description="Person properties as a JSON object."),
)
# Reading the for_user body (decode.read_body, parse_json) and judging the user in it (flags._user_context).
_USER_ERRORS = ("invalid_json", "not_an_object", "validation_error", "invalid_api_key")
_NOT_MODIFIED = Response(304, "Not modified.")

OPERATIONS = (
    Operation(
        "post",
        f"{API}/capture/",
        "capture",
        "Capture one event",
        (Response(200, "Committed (or already stored: a resend is accepted again).", CaptureAccepted),),
        errors=CAPTURE_ERRORS,
        request=Event,
    ),
    Operation(
        "post",
        f"{API}/batch/",
        "batch",
        "Capture a batch of events; invalid ones are refused one by one",
        (Response(200, "The valid events are committed; `rejected` lists the others.", BatchAccepted),),
        errors=BATCH_ERRORS,
        request=Batch,
    ),
    Operation(
        "post",
        f"{API}/session/start/",
        "startSession",
        "Start a session",
        (
            Response(201, "Created.", SessionStarted),
            Response(200, "The same start was already recorded.", SessionStarted),
        ),
        errors=(*CAPTURE_ERRORS, "session_exists"),
        request=SessionStart,
    ),
    Operation(
        "put",
        f"{API}/session/{{session_id}}/end/",
        "endSession",
        "End a session (idempotent)",
        (Response(200, "Ended.", SessionEnded),),
        errors=(*CAPTURE_ERRORS, "end_before_start", "session_not_found"),
        request=SessionEnd,
        request_required=False,
        params=(_SESSION_ID,),
    ),
    Operation(
        "get",
        f"{PUBLIC}/",
        "listActiveFlags",
        "The active feature flags: id, key, name, variant keys (no targeting, rollout or payload)",
        (Response(200, "Active flags, with an ETag.", PublicFlagList), _NOT_MODIFIED),
        errors=("invalid_api_key",),
        params=(ETAG,),
    ),
    Operation(
        "get",
        f"{PUBLIC}/{{flag_id}}/",
        "getFlag",
        "One feature flag: id, key, name, active, variant keys",
        (Response(200, type=PublicFlag),),
        errors=("not_found", "invalid_api_key"),
        params=(_FLAG_ID,),
    ),
    Operation(
        "get",
        f"{PUBLIC}/for_user/",
        "flagsForUserGet",
        "Evaluate every flag for a user",
        (Response(200, type=FlagsForUser), _NOT_MODIFIED),
        errors=("validation_error", "invalid_api_key"),
        params=(*_USER_QUERY, ETAG, RECORD_EXPOSURE),
    ),
    Operation(
        "post",
        f"{PUBLIC}/for_user/",
        "flagsForUserPost",
        "Evaluate every flag for a user (context in the body)",
        (Response(200, type=FlagsForUser),),
        errors=(*_USER_ERRORS, "payload_too_large"),
        request=UserContext,
        params=(RECORD_EXPOSURE,),
    ),
    Operation(
        "get",
        "/metrics",
        "metrics",
        "Prometheus metrics of this process",
        (Response(200, "Prometheus text format.", str, media_type="text/plain"),),
    ),
    Operation("get", "/healthz", "healthz", "The process is up", (Response(200, "Up."),)),
    Operation(
        "get",
        "/readyz",
        "readyz",
        "The database is reachable",
        (Response(200, "Ready."),),
        errors=("service_unavailable",),
    ),
    Operation("get", f"{API}/openapi.json", "openapi", "This document", (Response(200, "OpenAPI 3 document."),)),
)
