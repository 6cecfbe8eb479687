"""Admin routes of A/B experiments: CRUD, and the results the pipeline computed.

Definitions live in `experiments` (ingest_api owns them); results are read from
analytics.agg_experiment_results, written by the Dagster asset `analytics/agg_experiment_results`.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventtrack.errors import ApiError
from ingest_api.admin.http import ADMIN, admin_only, check_unknown_params, json_object, json_response, path_id
from ingest_api.admin.pagination import DEFAULT_LIMIT, Cursor, Slice
from ingest_api.admin.rows import delete_by_id, fetch_by_id, id_order_response, id_order_rows, one_response, write_row
from ingest_api.experiments.definition import ExperimentDefinitionError, is_text, merged_body, parse_experiment
from ingest_api.routing import method_routes
from ingest_api.state import AppState

COLUMNS = (
    "id", "name", "description", "flag_key", "control_variant", "goal_event", "secondary_events",
    "variants", "start_at", "end_at", "created_at", "updated_at",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM experiments"
_UPDATED = ("updated_at = now()",)
_JSONB = ("secondary_events", "variants")
RESULTS_TABLE = "analytics.agg_experiment_results"
EXPERIMENTS = f"{ADMIN}/experiments"
_NOT_FOUND = ApiError.of("not_found", "No experiment has this id.", {"id": "unknown"})


def _experiment_json(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    for name in ("start_at", "end_at", "created_at", "updated_at"):
        data[name] = data[name].isoformat()
    return data


def _experiment_id(request: Request) -> int:
    return path_id(request, "experiment_id", _NOT_FOUND)


def _invalid(err: ExperimentDefinitionError) -> ApiError:
    return ApiError.of(
        "validation_error", "The experiment is invalid: " + ", ".join(sorted(err.fields)) + ".", err.fields
    )


async def _validated(conn, body: dict[str, Any], partial_of: dict[str, Any] | None) -> dict[str, Any]:
    """Looks up the flag the (merged) body names, then validates the whole definition."""
    try:
        flag_key = merged_body(body, partial_of).get("flag_key")
        flag = None
        if is_text(flag_key) and flag_key:
            row = (
                await conn.execute(
                    sa.text("SELECT rollout_percentage, variants FROM feature_flags WHERE key = :k"), {"k": flag_key}
                )
            ).first()
            flag = dict(row._mapping) if row is not None else None
        return parse_experiment(body, flag, partial_of=partial_of)
    except ExperimentDefinitionError as err:
        raise _invalid(err) from None


async def experiment_listing(
    conn: AsyncConnection, *, flag_key: str | None = None, limit: int = DEFAULT_LIMIT, cursor: Cursor | None = None
) -> Slice:
    """A page of experiments in id order, as the API shows them; only those of `flag_key` when given."""
    where, params = [], {}
    if flag_key:
        where.append("flag_key = :flag_key")
        params["flag_key"] = flag_key.replace("\x00", "")
    return await id_order_rows(
        conn, select=_SELECT, where=where, params=params, limit=limit, cursor=cursor, to_json=_experiment_json
    )


@admin_only
async def list_experiments(request: Request) -> Response:
    check_unknown_params(request, {"limit", "cursor", "flag_key"})
    return await id_order_response(request, experiment_listing, flag_key=request.query_params.get("flag_key"))


@admin_only
async def create_experiment(request: Request) -> Response:
    state: AppState = request.app.state.eventtrack
    body = await json_object(request)
    async with state.engine.begin() as conn:
        fields = await _validated(conn, body, None)
        row = await write_row(conn, "experiments", fields, jsonb=_JSONB, returning=COLUMNS)
    return json_response(_experiment_json(row), 201)


_SELECT_ONE = sa.text(_SELECT + " WHERE id = :id")


async def experiment_by_id(conn: AsyncConnection, experiment_id: int) -> dict[str, Any]:
    """The experiment as the API shows it; 404 when there is none."""
    return _experiment_json(await fetch_by_id(conn, _SELECT_ONE, experiment_id, _NOT_FOUND))


@admin_only
async def get_experiment(request: Request) -> Response:
    return await one_response(request, experiment_by_id, _experiment_id(request))


@admin_only
async def delete_experiment(request: Request) -> Response:
    return await delete_by_id(request, "experiments", _experiment_id(request), _NOT_FOUND)


async def _update_experiment(request: Request, *, partial: bool) -> Response:
    state: AppState = request.app.state.eventtrack
    experiment_id = _experiment_id(request)
    body = await json_object(request)
    async with state.engine.begin() as conn:
        existing = (await conn.execute(_SELECT_ONE, {"id": experiment_id})).first()
        if existing is None:
            raise _NOT_FOUND
        fields = await _validated(conn, body, dict(existing._mapping) if partial else None)
        row = await write_row(
            conn, "experiments", fields, jsonb=_JSONB, returning=COLUMNS, row_id=experiment_id, also=_UPDATED
        )
    return json_response(_experiment_json(row))


# PUT: the body is the whole definition; PATCH: the body's fields over the stored one.
replace_experiment = admin_only(functools.partial(_update_experiment, partial=False))
patch_experiment = admin_only(functools.partial(_update_experiment, partial=True))


async def results_of_experiment(conn: AsyncConnection, experiment_id: int) -> dict[str, Any]:
    """The rows of analytics.agg_experiment_results for one experiment (empty until the pipeline has run); 404 when there is none."""
    if (await conn.execute(sa.text("SELECT 1 FROM experiments WHERE id = :id"), {"id": experiment_id})).first() is None:
        raise _NOT_FOUND
    rows: list[dict[str, Any]] = []
    if (await conn.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": RESULTS_TABLE})).scalar_one():
        # Every column of the table (declared once, in dbt: marts/experiments/_experiments__models.yml)
        # but the experiment_id the response already carries.
        sql = f"SELECT * FROM {RESULTS_TABLE} WHERE experiment_id = :id ORDER BY is_control DESC, variant"
        result = await conn.execute(sa.text(sql), {"id": experiment_id})
        rows = [{k: v for k, v in r._mapping.items() if k != "experiment_id"} for r in result.all()]
    computed_at = max((r.pop("computed_at") for r in rows), default=None)
    return {"experiment_id": experiment_id, "computed_at": computed_at, "results": rows}


@admin_only
async def experiment_results(request: Request) -> Response:
    check_unknown_params(request, set())
    experiment_id = _experiment_id(request)
    async with request.app.state.eventtrack.engine.connect() as conn:
        return json_response(await results_of_experiment(conn, experiment_id))


def experiment_routes() -> list[Route]:
    return [
        *method_routes(f"{EXPERIMENTS}/", {"GET": list_experiments, "POST": create_experiment}),
        *method_routes(
            f"{EXPERIMENTS}/{{experiment_id}}/",
            {"GET": get_experiment, "PUT": replace_experiment, "PATCH": patch_experiment, "DELETE": delete_experiment},
        ),
        *method_routes(f"{EXPERIMENTS}/{{experiment_id}}/results/", {"GET": experiment_results}),
    ]
