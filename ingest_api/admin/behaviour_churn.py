"""Admin route of the churn-risk scores: users by score, highest first (docs/analytics.md, "Churn risk").

Read from analytics.user_churn_scores, written weekly by the Dagster asset `analytics/user_churn_scores`;
the app version and OS filters read the features the score was made from (analytics.fct_user_churn_features).
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventtrack.errors import ApiError
from ingest_api.admin.http import ADMIN, admin_only, check_unknown_params, json_response
from ingest_api.admin.pagination import (
    DEFAULT_LIMIT,
    SCORE,
    TEXT,
    Cursor,
    Slice,
    decode_cursor,
    page_slice,
    parse_limit,
)
from ingest_api.admin.rows import json_row, listing_body
from ingest_api.routing import method_routes

CHURN = f"{ADMIN}/behaviour/churn/"
SCORES_TABLE = "analytics.user_churn_scores"
FEATURES_TABLE = "analytics.fct_user_churn_features"
HIGHEST_FIRST_KEY = (SCORE, TEXT)
_SELECT = (
    f"SELECT s.distinct_id, s.score, s.scored_at, s.cutoff_date, s.model_id, s.top_features,"
    f" f.app_version, f.os_name FROM {SCORES_TABLE} s"
    f" LEFT JOIN {FEATURES_TABLE} f ON f.distinct_id = s.distinct_id AND f.cutoff_date = s.cutoff_date"
)
_PARAMS = {"limit", "cursor", "min_score", "max_score", "os_name", "app_version", "distinct_id"}


async def _exists(conn: AsyncConnection, table: str) -> bool:
    return (await conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})).scalar_one()


def score_param(request: Request, name: str) -> float | None:
    """A score bound in [0, 1]; 400 otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise ApiError.of("invalid_parameter", f"{name} must be a number from 0 to 1.", {name: "0..1"})
    return value


async def churn_listing(
    conn: AsyncConnection,
    *,
    min_score: float | None = None,
    max_score: float | None = None,
    os_name: str | None = None,
    app_version: str | None = None,
    distinct_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: Cursor | None = None,
) -> Slice:
    """A keyset page of the scores, highest first (ties by distinct_id); empty until the pipeline has scored
    (dbt declares the scores table daily; the features table comes with the first weekly run)."""
    if not all([await _exists(conn, SCORES_TABLE), await _exists(conn, FEATURES_TABLE)]):
        return Slice([], None, None)
    where, params = [], {}
    for column, value in (("f.os_name", os_name), ("f.app_version", app_version), ("s.distinct_id", distinct_id)):
        if value:
            name = column.split(".")[1]
            where.append(f"{column} = :{name}")
            params[name] = value.replace("\x00", "")
    if min_score is not None:
        where.append("s.score >= :min_score")
        params["min_score"] = min_score
    if max_score is not None:
        where.append("s.score <= :max_score")
        params["max_score"] = max_score
    order = "DESC"
    if cursor:
        params["c_score"], params["c_id"] = cursor.key
        # Highest first: "forward" means lower scores (then later ids among equal scores).
        if cursor.forward:
            where.append("(s.score < :c_score OR (s.score = :c_score AND s.distinct_id > :c_id))")
        else:
            where.append("(s.score > :c_score OR (s.score = :c_score AND s.distinct_id < :c_id))")
            order = "ASC"
    id_order = "ASC" if order == "DESC" else "DESC"
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY s.score {order}, s.distinct_id {id_order} LIMIT {limit + 1}"
    rows = [dict(r._mapping) for r in (await conn.execute(sa.text(sql), params)).all()]
    part = page_slice(rows, limit=limit, cursor=cursor, key_of=lambda r: (r["score"], r["distinct_id"]))
    return Slice([json_row(r) for r in part.results], part.next, part.previous)


MODELS_TABLE = "analytics.churn_models"
DISTRIBUTION_BINS = 10


async def churn_overview(conn: AsyncConnection) -> dict[str, Any]:
    """The latest run of the churn model (None before the first) and the scores' distribution in
    DISTRIBUTION_BINS equal bins of [0, 1]: what the dashboard's Churn risk page shows above the table."""
    if not await _exists(conn, MODELS_TABLE):
        return {"model": None, "bins": []}
    model = (
        await conn.execute(
            sa.text(
                f"SELECT model_id, trained_at, status, verdict, scored_cutoff, validation_cutoff, metrics"
                f" FROM {MODELS_TABLE} ORDER BY trained_at DESC LIMIT 1"
            )
        )
    ).first()
    counts = dict(
        (
            await conn.execute(
                sa.text(
                    f"SELECT least(floor(score * {DISTRIBUTION_BINS}), {DISTRIBUTION_BINS - 1})::int AS bin, count(*)"
                    f" FROM {SCORES_TABLE} GROUP BY 1"
                )
            )
        ).all()
    )
    bins = [
        (f"{b / DISTRIBUTION_BINS:.1f}–{(b + 1) / DISTRIBUTION_BINS:.1f}", counts.get(b, 0))
        for b in range(DISTRIBUTION_BINS)
    ]
    return {"model": dict(model._mapping) if model else None, "bins": bins if counts else []}


def churn_filters(request: Request) -> dict[str, Any]:
    """The listing's filters from the query, checked (400 on a bad one)."""
    check_unknown_params(request, _PARAMS)
    query = request.query_params
    return {
        "min_score": score_param(request, "min_score"),
        "max_score": score_param(request, "max_score"),
        "os_name": query.get("os_name"),
        "app_version": query.get("app_version"),
        "distinct_id": query.get("distinct_id"),
        "limit": parse_limit(query.get("limit")),
        "cursor": decode_cursor(query.get("cursor"), HIGHEST_FIRST_KEY),
    }


@admin_only
async def list_churn_scores(request: Request) -> Response:
    filters = churn_filters(request)
    async with request.app.state.eventtrack.engine.connect() as conn:
        part = await churn_listing(conn, **filters)
    return json_response(listing_body(request, part))


def churn_routes() -> list[Route]:
    return method_routes(CHURN, {"GET": list_churn_scores})
