"""The admin API's bodies and operations, declared (the OpenAPI document is generated from them).

The bodies are still judged by flags/definition.py and eventtrack/analytics/funnels.py, which name every problem of a body
at once in `fields`; these types take their limits from the same constants.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from eventtrack.analytics.funnels import (
    DEFAULT_RANGE_DAYS,
    MAX_EVENT_LENGTH,
    MAX_RANGE_DAYS,
    MAX_SAVED_NAME_LENGTH,
    MAX_STEPS,
    WINDOW_PATTERN,
)
from eventtrack.analytics.segments import MAX_FILTERS
from ingest_api.admin.behaviour_anomalies import DIRECTIONS, SEVERITIES
from ingest_api.admin.http import ADMIN
from ingest_api.admin.pagination import MAX_LIMIT
from ingest_api.declarations import (
    ADMIN_BODY_ERRORS,
    ADMIN_ERRORS,
    NOT_FOUND,
    WINDOW,
    Operation,
    Page,
    Param,
    PositiveId,
    Response,
    Timestamp,
    path,
    query,
)
from ingest_api.flags.definition import KEY_PATTERN, MAX_KEY_LENGTH, MAX_NAME_LENGTH

PAGING = (
    query("limit", Annotated[int, Meta(ge=1, le=MAX_LIMIT)]),
    query("cursor", description="From a `next` or `previous` link."),
)
Percentage = Annotated[float, Meta(ge=0, le=100)]
FlagKey = Annotated[str, Meta(pattern=f"^{KEY_PATTERN}$", max_length=MAX_KEY_LENGTH)]


class PropertyFilter(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    operator: str
    value: Any = None


class FlagVariant(msgspec.Struct, forbid_unknown_fields=True):
    key: FlagKey
    rollout_percentage: Percentage
    payload: Any = None


class ConditionGroup(msgspec.Struct, forbid_unknown_fields=True):
    properties: list[PropertyFilter] | None = None
    rollout_percentage: Percentage | None = None
    variant: str | None = None


class FlagDefinition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A flag's editable fields (create, replace; a PATCH sends some of them)."""

    key: FlagKey | UnsetType = UNSET
    name: Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)] | None = None  # the key when not sent
    description: str | None = None
    active: bool | UnsetType = UNSET  # true when not sent
    rollout_percentage: Percentage | UnsetType = UNSET  # 0 when not sent: the flag reaches nobody
    variants: list[FlagVariant] | None = None
    conditions: list[ConditionGroup] | None = None
    payload: Any = None


class Flag(msgspec.Struct, kw_only=True):
    id: int
    key: str
    name: str
    description: str
    active: bool
    rollout_percentage: float
    variants: list[FlagVariant]
    conditions: list[ConditionGroup]
    payload: Any
    version: int
    created_at: Timestamp
    updated_at: Timestamp


EventType = Annotated[str, Meta(min_length=1, max_length=MAX_EVENT_LENGTH)]
SavedFunnelName = Annotated[str, Meta(min_length=1, max_length=MAX_SAVED_NAME_LENGTH)]
Window = Annotated[
    str,
    Meta(pattern=f"^{WINDOW_PATTERN}$", description="Conversion window from the first step; default 24h, at most 90d."),
]


class SavedFunnel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: SavedFunnelName
    steps: Annotated[list[EventType], Meta(min_length=2, max_length=MAX_STEPS)]
    window: Window | UnsetType = UNSET  # 24h when not sent
    range_days: Annotated[int, Meta(ge=1, le=MAX_RANGE_DAYS, description="Whole UTC days before each run.")] = (
        DEFAULT_RANGE_DAYS
    )


class FunnelStep(msgspec.Struct):
    step: int
    event_type: str
    users: int
    conversion_from_previous: float | None
    conversion_from_first: float | None
    median_seconds_from_previous: float | None


class StoredFunnel(msgspec.Struct, kw_only=True):
    """A saved funnel's definition; `results` is null until the daily run after it was saved."""

    id: int
    name: str
    steps: list[str]
    window_seconds: int
    range_days: int
    created_at: Timestamp
    results: list[FunnelStep] | None
    range_start: Timestamp | None = None
    range_end: Timestamp | None = None


class StoredFunnelList(msgspec.Struct):
    results: list[StoredFunnel]


class EventCount(msgspec.Struct, kw_only=True):
    event_type: str
    count: int
    breakdown_value: Any = None


class EventCounts(msgspec.Struct):
    start: Timestamp
    end: Timestamp
    total: int
    results: list[EventCount]


class Cohort(msgspec.Struct):
    cohort: Annotated[str, Meta(extra_json_schema={"format": "date"})]
    users: int
    retained: list[int]
    rates: list[float | None]


class Retention(msgspec.Struct):
    period: Literal["week", "day"]
    return_event: str | None
    cohorts: list[Cohort]


# Segmentation (eventtrack/analytics/segments.py, docs/analytics.md "Segmentation").
SEGMENT = (
    Param(
        "filter",
        "query",
        Annotated[list[str], Meta(max_length=MAX_FILTERS)],
        description="Repeatable `properties.<key><op><value>`, op one of = != > >= < <=; e.g. `properties.plan=pro`.",
        explode=True,
    ),
    query("breakdown", description="`os_name`, `app_version`, `os_version`, `event_type` or `properties.<key>`."),
)
FLAG_ID = path("flag_id", PositiveId)
FUNNEL_ID = path("funnel_id", PositiveId)
_FLAGS = f"{ADMIN}/feature-flags/"
_SAVED = f"{ADMIN}/funnels/saved/"


def admin_operation(
    method: str, url: str, operation_id: str, summary: str, *responses: Response, **more: Any
) -> Operation:
    errors = ADMIN_BODY_ERRORS if more.get("request") is not None else ADMIN_ERRORS
    if any(p.where == "path" and p.type is PositiveId for p in more.get("params", ())):
        errors = (*errors, *NOT_FOUND)
    return Operation(method, url, operation_id, summary, responses, errors=errors, admin=True, **more)


def resource_operations(
    collection: str,
    item_id: Param,
    names: tuple[str, str],
    definition: Any,
    item: Any,
    summaries: dict[str, str],
    list_params: tuple[Param, ...],
) -> tuple[Operation, ...]:
    """The six operations of an admin resource: list and create on `collection`, get, replace (PUT), update
    (PATCH) and delete on one item; `names`: the item's name, singular and plural, in the operation ids."""
    one, (noun, plural) = f"{collection}{{{item_id.name}}}/", names
    by_id = {"params": (item_id,)}
    return (
        admin_operation(
            "get", collection, f"adminList{plural}", summaries["list"], Response(200, type=Page), params=list_params
        ),
        admin_operation(
            "post",
            collection,
            f"adminCreate{noun}",
            summaries["create"],
            Response(201, "Created.", item),
            request=definition,
        ),
        admin_operation("get", one, f"adminGet{noun}", summaries["get"], Response(200, type=item), **by_id),
        admin_operation(
            "put",
            one,
            f"adminReplace{noun}",
            summaries["replace"],
            Response(200, type=item),
            request=definition,
            **by_id,
        ),
        admin_operation(
            "patch",
            one,
            f"adminUpdate{noun}",
            summaries["update"],
            Response(200, type=item),
            request=definition,
            **by_id,
        ),
        admin_operation("delete", one, f"adminDelete{noun}", summaries["delete"], Response(204, "Deleted."), **by_id),
    )


OPERATIONS = (
    admin_operation(
        "get",
        f"{ADMIN}/events/",
        "adminListEvents",
        "Raw events, newest first",
        Response(200, type=Page),
        params=(query("event_type"), query("distinct_id"), query("session_id"), *WINDOW, *PAGING),
    ),
    admin_operation(
        "get",
        f"{ADMIN}/events/event_counts/",
        "adminEventCounts",
        "Exact event counts by type over [start, end) (default: the last 24 hours)",
        Response(200, "Counts by event type, largest first.", EventCounts),
        params=(query("event_type"), *WINDOW, *SEGMENT),
    ),
    admin_operation(
        "get",
        f"{ADMIN}/event-aggregates/",
        "adminEventAggregates",
        "Rows of the hourly or daily aggregate",
        Response(200, type=Page),
        params=(
            query("granularity", Literal["hour", "day"]),
            query("event_type"),
            query("app_version"),
            query("os_name"),
            *WINDOW,
            *PAGING,
            *SEGMENT,
        ),
    ),
    admin_operation(
        "get",
        f"{ADMIN}/sessions/",
        "adminListSessions",
        "Sessions, newest first",
        Response(200, type=Page),
        params=(query("distinct_id"), query("status", Literal["active", "ended"]), *WINDOW, *PAGING),
    ),
    *resource_operations(
        _FLAGS,
        FLAG_ID,
        ("Flag", "Flags"),
        FlagDefinition,
        Flag,
        {
            "list": "All feature flags",
            "create": "Create a feature flag",
            "get": "One feature flag",
            "replace": "Replace a flag's definition (bumps version)",
            "update": "Change some fields of a flag (bumps version)",
            "delete": "Delete a flag",
        },
        list_params=(query("active", Literal["true", "false"]), *PAGING),
    ),
    admin_operation(
        "get",
        f"{ADMIN}/funnels/",
        "adminFunnel",
        "Users reaching each step in order within the conversion window (raw events)",
        Response(200, "Per step: users, conversions, median seconds from the previous step."),
        params=(
            query(
                "steps",
                required=True,
                description=f"2-{MAX_STEPS} event types, comma-separated: `app_open,view_item,purchase`.",
            ),
            query("window", Window),
            *WINDOW,
            *SEGMENT,
        ),
    ),
    admin_operation(
        "get",
        _SAVED,
        "adminListSavedFunnels",
        "Saved funnels (their results are built daily by the pipeline)",
        Response(200, "Every saved funnel.", StoredFunnelList),
    ),
    admin_operation(
        "post",
        _SAVED,
        "adminSaveFunnel",
        "Save a funnel",
        Response(201, "Saved; results appear after the next daily run.", StoredFunnel),
        request=SavedFunnel,
    ),
    admin_operation(
        "get",
        f"{_SAVED}{{funnel_id}}/",
        "adminGetSavedFunnel",
        "A saved funnel and its results from analytics.agg_funnel_results",
        Response(200, "Definition and the latest results.", StoredFunnel),
        params=(FUNNEL_ID,),
    ),
    admin_operation(
        "delete",
        f"{_SAVED}{{funnel_id}}/",
        "adminDeleteSavedFunnel",
        "Delete a saved funnel",
        Response(204, "Deleted."),
        params=(FUNNEL_ID,),
    ),
    admin_operation(
        "get",
        f"{ADMIN}/retention/",
        "adminRetention",
        "The cohort triangle of analytics.agg_retention_weekly / agg_retention_daily",
        Response(200, "One entry per cohort: users and retained users per period.", Retention),
        params=(query("period", Literal["week", "day"]), *WINDOW),
    ),
)


# Streaming (docs/operations.md "Streaming"): the live tail and webhook destinations.
DESTINATION_ID = path("destination_id", PositiveId)
_DESTINATIONS = f"{ADMIN}/destinations/"
DestinationInt = Annotated[int, Meta(ge=0)]


class DestinationDefinition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A destination's editable fields (create, replace; a PATCH sends some of them). Limits: the admin API
    checks them (eventtrack/streaming/destinations.py) and names each field it refuses."""

    name: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    url: Annotated[str, Meta(max_length=2048, description="http(s) URL the batches are POSTed to.")] | UnsetType = UNSET
    secret: Annotated[str, Meta(min_length=16, max_length=200)] | UnsetType = UNSET  # generated when not sent
    event_types: list[str] | UnsetType = UNSET  # empty: every event type
    filters: list[str] | UnsetType = UNSET  # segment filters, e.g. "properties.plan=pro"
    batch_size: Annotated[int, Meta(ge=1, le=1000)] | UnsetType = UNSET
    max_wait_ms: Annotated[int, Meta(ge=0, le=60000)] | UnsetType = UNSET
    timeout_ms: Annotated[int, Meta(ge=100, le=60000)] | UnsetType = UNSET
    pause_after_seconds: Annotated[int, Meta(ge=1, le=30 * 86400)] | UnsetType = UNSET
    status: Literal["active", "paused"] | UnsetType = UNSET


class DestinationLag(msgspec.Struct):
    events: int
    seconds: float


class Destination(msgspec.Struct, kw_only=True):
    id: int
    name: str
    url: str
    secret: str
    event_types: list[str]
    filters: list[str]
    batch_size: int
    max_wait_ms: int
    timeout_ms: int
    pause_after_seconds: int
    status: Literal["active", "paused"]
    paused_reason: str | None
    cursor_seq: DestinationInt
    failing_since: Timestamp | None
    next_attempt_at: Timestamp | None
    consecutive_failures: int
    last_status: int | None
    last_error: str | None
    last_delivered_at: Timestamp | None
    delivered_events: int
    delivered_batches: int
    failed_attempts: int
    dead_lettered_events: int
    created_at: Timestamp
    updated_at: Timestamp
    lag: DestinationLag


class Replay(msgspec.Struct, forbid_unknown_fields=True):
    """`from`: an event's seq (delivered again with every later one) or an ISO 8601 time (every event received since)."""

    from_: DestinationInt | Timestamp = msgspec.field(name="from")


OPERATIONS += (
    admin_operation(
        "get",
        f"{ADMIN}/events/stream/",
        "adminStreamEvents",
        "Live tail: Server-Sent Events of committed events in arrival order",
        Response(
            200,
            "`text/event-stream`: one `event` message per event (`id`: its seq, `data`: the event as JSON), heartbeat"
            " comments; a `close` message with the reason before the server ends a stream.",
            str,
            media_type="text/event-stream",
        ),
        params=(
            query("after", DestinationInt, "Resume after this seq (the `Last-Event-ID` header wins); default: now."),
            Param("event_type", "query", list[str], description="Repeatable: only these event types.", explode=True),
            query("distinct_id"),
            SEGMENT[0],
        ),
    ),
    *resource_operations(
        _DESTINATIONS,
        DESTINATION_ID,
        ("Destination", "Destinations"),
        DestinationDefinition,
        Destination,
        {
            "list": "Webhook destinations, with their lag",
            "create": "Create a webhook destination (it delivers events from now on)",
            "get": "One destination, with its lag",
            "replace": "Replace a destination's definition (a secret left out is kept)",
            "update": "Change some fields of a destination (status: pause or resume)",
            "delete": "Delete a destination",
        },
        list_params=PAGING,
    ),
    admin_operation(
        "post",
        f"{_DESTINATIONS}{{destination_id}}/replay/",
        "adminReplayDestination",
        "Deliver again from an event's seq or a time",
        Response(200, type=Destination),
        request=Replay,
        params=(DESTINATION_ID,),
    ),
    admin_operation(
        "get",
        f"{_DESTINATIONS}{{destination_id}}/dead-letters/",
        "adminListDestinationDeadLetters",
        "Batches the receiver refused for good (4xx), with its answer",
        Response(200, type=Page),
        params=(DESTINATION_ID, *PAGING),
    ),
)


# Behaviour: volume anomalies (docs/analytics.md "Volume anomalies"), built by the pipeline after each hourly aggregate.
OPERATIONS += (
    admin_operation(
        "get",
        f"{ADMIN}/behaviour/anomalies/",
        "adminListVolumeAnomalies",
        "Volume anomalies of analytics.agg_event_volume_anomalies, newest hour first",
        Response(200, type=Page),
        params=(
            query("event_type"),
            query("severity", Literal[SEVERITIES]),
            query("direction", Literal[DIRECTIONS]),
            *WINDOW,
            *PAGING,
        ),
    ),
)


# Churn risk (ingest_api/admin/behaviour_churn.py, docs/analytics.md "Churn risk").
ScoreBound = Annotated[float, Meta(ge=0, le=1)]
OPERATIONS += (
    admin_operation(
        "get",
        f"{ADMIN}/behaviour/churn/",
        "adminListChurnScores",
        "Users' churn-risk scores of the latest weekly model, highest first",
        Response(200, type=Page),
        params=(
            query("min_score", ScoreBound),
            query("max_score", ScoreBound),
            query("os_name"),
            query("app_version"),
            query("distinct_id"),
            *PAGING,
        ),
    ),
)
