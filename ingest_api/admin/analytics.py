"""Admin analytics routes: funnels (raw events, one SQL query) and retention (the dbt marts)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from ingest_api.admin.funnel_query import (
    FunnelParamError,
    StepRow,
    funnel_params,
    funnel_sql,
    parse_saved_funnel,
    parse_steps,
    parse_window,
    shape_results,
    step_results,
)
from ingest_api.admin.http import admin_only, check_unknown_params, json_object, json_response, path_id, time_param
from ingest_api.admin.rows import delete_by_id
from ingest_api.admin.segments import SegmentError, filters_sql, parse_breakdown, parse_filters
from ingest_api.errors import ApiError
from ingest_api.state import AppState

MAX_FUNNEL_RANGE = timedelta(days=366)


def _invalid(fields: dict[str, str]) -> ApiError:
    return ApiError(400, "invalid_parameter", "Invalid parameters: " + ", ".join(sorted(fields)) + ".", fields)


def time_range(request: Request, default: timedelta, limit: timedelta) -> tuple[datetime, datetime]:
    end = time_param(request, "end") or datetime.now(timezone.utc)
    start = time_param(request, "start") or end - default
    if start >= end:
        raise _invalid({"start": "must be before end"})
    if end - start > limit:
        raise _invalid({"start": f"range longer than {limit.days} days"})
    return start, end


@admin_only
async def funnel(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    check_unknown_params(request, {"steps", "window", "start", "end", "breakdown", "filter"})
    try:
        steps = parse_steps(request.query_params.get("steps"))
        window = parse_window(request.query_params.get("window"))
        filters = parse_filters(request.query_params.getlist("filter"))
        breakdown = parse_breakdown(request.query_params.get("breakdown"))
    except (FunnelParamError, SegmentError) as err:
        raise _invalid(err.fields) from None
    start, end = time_range(request, timedelta(days=30), MAX_FUNNEL_RANGE)
    where, params = filters_sql(filters)
    try:
        params.update(funnel_params(steps, start, end, window))
    except OverflowError:  # end + window past year 9999
        raise _invalid({"end": "too far in the future"}) from None
    async with state.engine.connect() as conn:
        rows = (await conn.execute(sa.text(funnel_sql(len(steps), breakdown, where)), params)).all()
    body: dict[str, Any] = {
        "steps": steps,
        "window_seconds": int(window.total_seconds()),
        "start": start,
        "end": end,
        "filter": request.query_params.getlist("filter"),
        "breakdown_by": request.query_params.get("breakdown") or None,
    }
    body.update(shape_results(steps, [(r.is_total, r.bd, r.step, r.users, r.median_seconds) for r in rows], breakdown is not None))
    return json_response(body)


RETENTION_TABLES = {"week": "analytics.retention_weekly", "day": "analytics.retention_daily"}


def cohort_triangle(rows: list[tuple]) -> list[dict[str, Any]]:
    """(cohort, cohort_users, period_number, retained_users, return_event) rows -> one entry per cohort, periods in order."""
    cohorts: dict[Any, dict[str, Any]] = {}
    for cohort, cohort_users, n, retained, _ in sorted(rows, key=lambda r: (r[0], r[2])):
        entry = cohorts.setdefault(cohort, {"cohort": cohort.isoformat(), "users": cohort_users, "retained": [], "rates": []})
        entry["retained"].append(retained)
        entry["rates"].append(round(retained / cohort_users, 6) if cohort_users else None)
    return list(cohorts.values())


@admin_only
async def retention(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    check_unknown_params(request, {"period", "start", "end"})
    period = request.query_params.get("period", "week")
    if period not in RETENTION_TABLES:
        raise _invalid({"period": "week or day"})
    table = RETENTION_TABLES[period]
    start, end = time_param(request, "start"), time_param(request, "end")
    where, params = [], {}
    if start:
        where.append("cohort >= :start")
        params["start"] = start.astimezone(timezone.utc).date()
    if end:
        where.append("cohort < :end")
        params["end"] = end.astimezone(timezone.utc).date()
    sql = f"SELECT cohort, cohort_users, period_number, retained_users, return_event FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    async with state.engine.connect() as conn:
        exists = (await conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})).scalar_one()
        rows = [tuple(r) for r in (await conn.execute(sa.text(sql), params)).all()] if exists else []
    return json_response(
        {
            "period": period,
            "return_event": rows[0][4] if rows else None,
            "cohorts": cohort_triangle(rows),
        }
    )


# --- saved funnels: definitions here, results built daily by dbt (analytics.funnel_results) ----------

_SAVED_COLUMNS = "id, name, steps, window_seconds, range_days, created_at"
FUNNEL_RESULTS = "analytics.funnel_results"
_SAVED_NOT_FOUND = ApiError(404, "not_found", "No saved funnel has this id.", {"id": "unknown"})


def _saved_json(row) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "steps": list(row.steps), "window_seconds": row.window_seconds, "range_days": row.range_days, "created_at": row.created_at}


def _saved_id(request: Request) -> int:
    return path_id(request, "funnel_id", _SAVED_NOT_FOUND)


@admin_only
async def list_saved_funnels(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    check_unknown_params(request, set())
    async with state.engine.connect() as conn:
        rows = (await conn.execute(sa.text(f"SELECT {_SAVED_COLUMNS} FROM saved_funnels ORDER BY id LIMIT 1000"))).all()
    return json_response({"results": [_saved_json(r) for r in rows]})


@admin_only
async def create_saved_funnel(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    try:
        fields = parse_saved_funnel(await json_object(request))
    except FunnelParamError as err:
        raise ApiError(400, "validation_error", "The saved funnel is invalid: " + ", ".join(sorted(err.fields)) + ".", err.fields) from None
    sql = (
        "INSERT INTO saved_funnels (name, steps, window_seconds, range_days) VALUES (:name, :steps, :window_seconds, :range_days)"
        f" RETURNING {_SAVED_COLUMNS}"
    )
    async with state.engine.begin() as conn:
        row = (await conn.execute(sa.text(sql), fields)).one()
    return json_response({**_saved_json(row), "results": None}, 201)


@admin_only
async def delete_saved_funnel(request: Request) -> Response:
    await delete_by_id(request, "saved_funnels", _saved_id(request), _SAVED_NOT_FOUND)
    return Response(status_code=204)


@admin_only
async def get_saved_funnel(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    funnel_id = _saved_id(request)
    check_unknown_params(request, set())
    async with state.engine.connect() as conn:
        row = (await conn.execute(sa.text(f"SELECT {_SAVED_COLUMNS} FROM saved_funnels WHERE id = :id"), {"id": funnel_id})).first()
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
    body["results"] = step_results(body["steps"], [StepRow(r.step, r.users, r.median_seconds_from_previous) for r in results]) if results else None
    body["range_start"] = results[0].range_start if results else None
    body["range_end"] = results[0].range_end if results else None
    return json_response(body)
