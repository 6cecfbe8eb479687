"""Volume anomalies (analytics.agg_event_volume_anomalies, built after each hourly aggregate by the pipeline:
orchestration/anomalies.py): the admin listing, and the judged hours the dashboard draws."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Unpack

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from eventtrack.errors import ApiError
from ingest_api.admin.http import admin_only, check_unknown_params, json_response, text_param, time_param
from ingest_api.admin.pagination import TEXT, TIMESTAMP, Slice, decode_cursor, parse_limit
from ingest_api.admin.rows import NewestFirstWindow, listing_body, newest_first_rows

ANOMALIES = "analytics.agg_event_volume_anomalies"
SEVERITIES = ("low", "medium", "high")
DIRECTIONS = ("drop", "spike")
# Newest first by (hour, event_type): the table's key.
ANOMALY_KEY = (TIMESTAMP, TEXT)
_FIELDS = (
    "hour, event_type, actual, expected, lower_bound, upper_bound, score, ratio, direction, severity,"
    " history_weeks, threshold, judged_at"
)


async def _built(conn: AsyncConnection) -> bool:
    return (await conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": ANOMALIES})).scalar_one()


def choice_value(name: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    """One of `choices`, or None when absent or empty; 400 otherwise."""
    if value in (None, ""):
        return None
    if value not in choices:
        raise ApiError.of(
            "invalid_parameter", f"{name} must be one of {', '.join(choices)}.", {name: "|".join(choices)}
        )
    return value


async def anomaly_listing(
    conn: AsyncConnection,
    *,
    event_type: str | None = None,
    severity: str | None = None,
    direction: str | None = None,
    **window: Unpack[NewestFirstWindow],
) -> Slice:
    """A page of anomalies (judged hours with a severity), newest hour first; hours in [start, end)."""
    if not await _built(conn):  # the pipeline has not run yet
        return Slice([], None, None)
    where, params = ["severity IS NOT NULL"], {}
    for name, value in (("event_type", event_type), ("severity", severity), ("direction", direction)):
        if value is not None:
            where.append(f"{name} = :{name}")
            params[name] = value
    return await newest_first_rows(
        conn, select=f"SELECT {_FIELDS} FROM {ANOMALIES}", where=where, params=params, time_column="hour",
        id_column="event_type", **window,
    )  # fmt: skip


@admin_only
async def list_anomalies(request: Request) -> Response:
    check_unknown_params(request, {"event_type", "severity", "direction", "start", "end", "limit", "cursor"})
    q = request.query_params
    event_type = text_param(request, "event_type")
    severity = choice_value("severity", q.get("severity"), SEVERITIES)
    direction = choice_value("direction", q.get("direction"), DIRECTIONS)
    limit, cursor = parse_limit(q.get("limit")), decode_cursor(q.get("cursor"), ANOMALY_KEY)
    start, end = time_param(request, "start"), time_param(request, "end")
    async with request.app.state.eventtrack.engine.connect() as conn:
        part = await anomaly_listing(
            conn,
            event_type=event_type,
            severity=severity,
            direction=direction,
            start=start,
            end=end,
            limit=limit,
            cursor=cursor,
        )
    return json_response(listing_body(request, part))


_JUDGED_TYPES = sa.text(
    f"SELECT event_type, count(*) FILTER (WHERE severity IS NOT NULL) AS anomalies FROM {ANOMALIES}"
    " WHERE hour >= :since GROUP BY event_type ORDER BY anomalies DESC, event_type LIMIT 200"
)
_JUDGED_HOURS = sa.text(
    f"SELECT hour, actual, expected, lower_bound, upper_bound, direction, severity FROM {ANOMALIES}"
    " WHERE event_type = :event_type AND hour >= :since ORDER BY hour"
)


async def judged_types(conn: AsyncConnection, since: datetime) -> list[tuple[str, int]] | None:
    """The event types judged since `since`, with their number of anomalies, most first; None before the first run."""
    if not await _built(conn):
        return None
    return [(r.event_type, r.anomalies) for r in (await conn.execute(_JUDGED_TYPES, {"since": since})).all()]


async def judged_hours(conn: AsyncConnection, event_type: str, since: datetime) -> dict[datetime, Any]:
    """The judged hours of one event type since `since` (count, band, verdict), by hour."""
    rows = (await conn.execute(_JUDGED_HOURS, {"event_type": event_type, "since": since})).all()
    return {r.hour: r for r in rows}
