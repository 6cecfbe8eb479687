"""Admin analytics routes: funnels (raw events, one SQL query) and retention (the dbt marts, or ClickHouse)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from eventtrack import clickhouse
from eventtrack.analytics.funnels import (
    FunnelParamError,
    StepRow,
    clickhouse_funnel_params,
    clickhouse_funnel_sql,
    funnel_params,
    funnel_sql,
    parse_saved_funnel,
    parse_steps,
    parse_window,
    shape_results,
    step_results,
)
from eventtrack.analytics.retention import clickhouse_retention_sql, in_cohort_range, retention_params, retention_rows
from eventtrack.analytics.segments import (
    PropertyFilter,
    SegmentError,
    clickhouse_breakdown,
    clickhouse_filters_sql,
    filters_sql,
    parse_breakdown,
    parse_filters,
)
from eventtrack.errors import ApiError
from ingest_api.admin.clickhouse_reads import clickhouse_rows, current_split, unloaded_rows
from ingest_api.admin.http import (
    admin_only,
    check_unknown_params,
    json_object,
    json_response,
    path_id,
    time_param,
    time_value,
)
from ingest_api.admin.rows import delete_by_id
from ingest_api.state import AppState

MAX_FUNNEL_RANGE = timedelta(days=366)


def _invalid(fields: dict[str, str]) -> ApiError:
    return ApiError.of("invalid_parameter", "Invalid parameters: " + ", ".join(sorted(fields)) + ".", fields)


def checked_range(
    start: datetime | None, end: datetime | None, default: timedelta, limit: timedelta
) -> tuple[datetime, datetime]:
    """[start, end): end defaults to now, start to `default` before end; 400 unless start < end within `limit`."""
    end = end or datetime.now(UTC)
    start = start or end - default
    if start >= end:
        raise _invalid({"start": "must be before end"})
    if end - start > limit:
        raise _invalid({"start": f"range longer than {limit.days} days"})
    return start, end


@dataclass(frozen=True)
class FunnelQuery:
    """A funnel to compute, parsed; `filter_text` and `breakdown_by` are the filters and breakdown as asked (echoed in the answer)."""

    steps: list[str]
    window: timedelta
    start: datetime
    end: datetime
    filters: list[PropertyFilter]
    breakdown: str | None  # the SQL expression of the breakdown
    filter_text: list[str]
    breakdown_by: str | None


def parse_funnel_query(
    steps: str | None, window: str | None, start: str | None, end: str | None, filters: list[str], breakdown: str | None
) -> FunnelQuery:
    """The funnel the API's query parameters (or the dashboard's form) ask for; 400 with the fields at fault otherwise."""
    try:
        parsed_steps = parse_steps(steps)
        parsed_window = parse_window(window)
        parsed_filters = parse_filters(filters)
        breakdown_expr = parse_breakdown(breakdown)
    except (FunnelParamError, SegmentError) as err:
        raise _invalid(err.fields) from None
    end_at = time_value("end", end)
    start_at, end_at = checked_range(time_value("start", start), end_at, timedelta(days=30), MAX_FUNNEL_RANGE)
    return FunnelQuery(
        parsed_steps, parsed_window, start_at, end_at, parsed_filters, breakdown_expr, filters, breakdown or None
    )


async def run_funnel(state: AppState, query: FunnelQuery) -> dict[str, Any]:
    """The funnel's users and conversions per step (and per breakdown value), as the API answers them: on
    ClickHouse when it is configured (the same answer, docs/scaling.md), else on Postgres."""
    if query.end > datetime.max.replace(tzinfo=UTC) - query.window:  # end + window past year 9999
        raise _invalid({"end": "too far in the future"})
    # Off the event loop: connecting (the first time) and clickhouse-connect's queries are synchronous.
    analytics = await anyio.to_thread.run_sync(state.clickhouse)
    if analytics is not None:
        client, target = analytics
        promoted = await anyio.to_thread.run_sync(clickhouse.promoted_columns, client, target)
        where, params = clickhouse_filters_sql(query.filters, promoted=promoted)
        params.update(clickhouse_funnel_params(query.steps, query.start, query.end, query.window))
        breakdown = clickhouse_breakdown(query.breakdown_by, promoted)
        sql = clickhouse_funnel_sql(target.database, len(query.steps), breakdown, where)
        result = await anyio.to_thread.run_sync(lambda: client.query(sql, parameters=params).result_rows)
        rows = [(bool(total), value, int(step), int(users), median) for total, value, step, users, median in result]
    else:
        where, params = filters_sql(query.filters)
        params.update(funnel_params(query.steps, query.start, query.end, query.window))
        async with state.engine.connect() as conn:
            rows = (await conn.execute(sa.text(funnel_sql(len(query.steps), query.breakdown, where)), params)).all()
    body: dict[str, Any] = {
        "steps": query.steps,
        "window_seconds": int(query.window.total_seconds()),
        "start": query.start,
        "end": query.end,
        "filter": query.filter_text,
        "breakdown_by": query.breakdown_by,
    }
    body.update(shape_results(query.steps, [tuple(r) for r in rows], query.breakdown is not None))
    return body


@admin_only
async def funnel(request: Request) -> Response:
    check_unknown_params(request, {"steps", "window", "start", "end", "breakdown", "filter"})
    q = request.query_params
    query = parse_funnel_query(
        q.get("steps"), q.get("window"), q.get("start"), q.get("end"), q.getlist("filter"), q.get("breakdown")
    )
    return json_response(await run_funnel(request.app.state.eventtrack, query))


RETENTION_TABLES = {"week": "analytics.agg_retention_weekly", "day": "analytics.agg_retention_daily"}


def cohort_triangle(rows: list[tuple]) -> list[dict[str, Any]]:
    """(cohort, cohort_users, period_number, retained_users, return_event) rows -> one entry per cohort, periods in order."""
    cohorts: dict[Any, dict[str, Any]] = {}
    for cohort, cohort_users, _period, retained, _ in sorted(rows, key=lambda r: (r[0], r[2])):
        entry = cohorts.setdefault(
            cohort, {"cohort": cohort.isoformat(), "users": cohort_users, "retained": [], "rates": []}
        )
        entry["retained"].append(retained)
        entry["rates"].append(round(retained / cohort_users, 6) if cohort_users else None)
    return list(cohorts.values())


async def retention_cohorts(
    state: AppState, period: str, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """The cohort triangle with cohorts in [start, end): from the marts, or computed on ClickHouse from raw
    events when it is configured (eventtrack/analytics/retention.py: the marts' definition, fresh)."""
    first = start.astimezone(UTC).date() if start else None
    last = end.astimezone(UTC).date() if end else None
    if state.settings.clickhouse_url:
        return_event = state.settings.retention_return_event
        async with state.engine.connect() as conn:
            client, target, split = await current_split(state, conn)
            unloaded = await unloaded_rows(conn, split)
        sql = clickhouse_retention_sql(target.database, period, return_event, unloaded)
        found = await clickhouse_rows(client, sql, retention_params(split.clickhouse_params(), return_event))
        rows = in_cohort_range(retention_rows(found, period, return_event), first, last)
    else:
        table = RETENTION_TABLES[period]
        where, params = [], {}
        if first:
            where.append("cohort >= :start")
            params["start"] = first
        if last:
            where.append("cohort < :end")
            params["end"] = last
        sql = f"SELECT cohort, cohort_users, period_number, retained_users, return_event FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        async with state.engine.connect() as conn:
            exists = (await conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})).scalar_one()
            rows = [tuple(r) for r in (await conn.execute(sa.text(sql), params)).all()] if exists else []
    return {"period": period, "return_event": rows[0][4] if rows else None, "cohorts": cohort_triangle(rows)}


@admin_only
async def retention(request: Request) -> Response:
    check_unknown_params(request, {"period", "start", "end"})
    period = request.query_params.get("period", "week")
    if period not in RETENTION_TABLES:
        raise _invalid({"period": "week or day"})
    start, end = time_param(request, "start"), time_param(request, "end")
    return json_response(await retention_cohorts(request.app.state.eventtrack, period, start, end))


# --- saved funnels: definitions here, results computed daily by the pipeline (analytics.agg_funnel_results) --

_SAVED_COLUMNS = "id, name, steps, window_seconds, range_days, created_at"
FUNNEL_RESULTS = "analytics.agg_funnel_results"
_SAVED_NOT_FOUND = ApiError.of("not_found", "No saved funnel has this id.", {"id": "unknown"})


def _saved_json(row) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "steps": list(row.steps),
        "window_seconds": row.window_seconds,
        "range_days": row.range_days,
        "created_at": row.created_at,
    }


def _saved_id(request: Request) -> int:
    return path_id(request, "funnel_id", _SAVED_NOT_FOUND)


async def saved_funnel_list(conn: AsyncConnection) -> list[dict[str, Any]]:
    """The saved funnels' definitions (the first 1000, in id order)."""
    rows = (await conn.execute(sa.text(f"SELECT {_SAVED_COLUMNS} FROM saved_funnels ORDER BY id LIMIT 1000"))).all()
    return [_saved_json(r) for r in rows]


@admin_only
async def list_saved_funnels(request: Request) -> Response:
    check_unknown_params(request, set())
    async with request.app.state.eventtrack.engine.connect() as conn:
        return json_response({"results": await saved_funnel_list(conn)})


@admin_only
async def create_saved_funnel(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    try:
        fields = parse_saved_funnel(await json_object(request))
    except FunnelParamError as err:
        raise ApiError.of(
            "validation_error", "The saved funnel is invalid: " + ", ".join(sorted(err.fields)) + ".", err.fields
        ) from None
    sql = (
        "INSERT INTO saved_funnels (name, steps, window_seconds, range_days) VALUES (:name, :steps, :window_seconds, :range_days)"
        f" RETURNING {_SAVED_COLUMNS}"
    )
    async with state.engine.begin() as conn:
        row = (await conn.execute(sa.text(sql), fields)).one()
    return json_response({**_saved_json(row), "results": None}, 201)


@admin_only
async def delete_saved_funnel(request: Request) -> Response:
    return await delete_by_id(request, "saved_funnels", _saved_id(request), _SAVED_NOT_FOUND)


async def saved_funnel_by_id(conn: AsyncConnection, funnel_id: int) -> dict[str, Any]:
    """A saved funnel with its latest results from analytics.agg_funnel_results; 404 when there is none."""
    row = (
        await conn.execute(sa.text(f"SELECT {_SAVED_COLUMNS} FROM saved_funnels WHERE id = :id"), {"id": funnel_id})
    ).first()
    if row is None:
        raise _SAVED_NOT_FOUND
    built = (await conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": FUNNEL_RESULTS})).scalar_one()
    results = []
    if built:
        results = (await conn.execute(
            sa.text(f"SELECT step, users, median_seconds_from_previous, range_start, range_end FROM {FUNNEL_RESULTS} WHERE funnel_id = :id ORDER BY step"),
            {"id": funnel_id},
        )).all()  # fmt: skip
    body = _saved_json(row)
    # Until the next daily run after saving, the funnel has no rows: results is null.
    body["results"] = (
        step_results(body["steps"], [StepRow(r.step, r.users, r.median_seconds_from_previous) for r in results])
        if results
        else None
    )
    body["range_start"] = results[0].range_start if results else None
    body["range_end"] = results[0].range_end if results else None
    return body


@admin_only
async def get_saved_funnel(request: Request) -> Response:
    funnel_id = _saved_id(request)
    check_unknown_params(request, set())
    async with request.app.state.eventtrack.engine.connect() as conn:
        return json_response(await saved_funnel_by_id(conn, funnel_id))
