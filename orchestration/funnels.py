"""The saved funnels' daily results: the live funnel endpoint's query, run by the pipeline.

One definition of a funnel (eventtrack/analytics/funnels.py): this asset runs the very query
of GET /api/v1/analytics/admin/funnels/ for each saved funnel over its last range_days whole
UTC days, and replaces the rows of analytics.funnel_results (a table dbt declares:
marts/funnel_results.sql and its yml) in one transaction.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from dagster import AssetExecutionContext, AssetKey, Config, MaterializeResult, asset
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

from eventtrack.analytics.funnels import SavedFunnel, saved_funnel_query, saved_funnel_rows
from orchestration.raw import EVENTS
from orchestration.resources import EventtrackResource, dbt_relation, replace_declared_table

SAVED_FUNNELS = AssetKey(["analytics_staging", "stg_eventtrack__saved_funnels"])
# The table itself is a dbt model (marts/funnel_results.sql: its columns, types and key are declared
# once, in the model's yml); this asset fills it.
RESULTS_TABLE_DEFINITION = AssetKey(["analytics", "funnel_results_table"])


def psycopg_sql(sql: str) -> str:
    """The funnel query's `:name` binds (SQLAlchemy's, as the API runs it) -> psycopg's `%(name)s`."""
    return str(sa.text(sql).compile(dialect=psycopg_dialect.dialect()))


class FunnelResultsConfig(Config):
    # The instant the results are computed as of (ISO-8601 with offset; tests pin it); none: now.
    # The range ends at midnight UTC of its day.
    as_of: str | None = None


@asset(
    key=AssetKey(["analytics", "funnel_results"]),
    deps=[SAVED_FUNNELS, EVENTS, RESULTS_TABLE_DEFINITION],
    group_name="marts",
    kinds={"python", "postgres"},
    description=(
        "Every saved funnel over its last range_days whole UTC days, one row per funnel and step, with the "
        "live funnel endpoint's query (docs/analytics.md, Saved funnels)."
    ),
)
def funnel_results(
    context: AssetExecutionContext, config: FunnelResultsConfig, eventtrack: EventtrackResource
) -> MaterializeResult:
    as_of = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
    with eventtrack.connect() as conn:
        # As the API's sessions: a window of whole days is added to t1 in UTC, never across a DST change.
        conn.execute("SET TIME ZONE 'UTC'")
        funnels = [
            SavedFunnel(funnel_id, name, list(steps), window_seconds, range_days)
            for funnel_id, name, steps, window_seconds, range_days in conn.execute(
                "SELECT funnel_id, funnel_name, steps, window_seconds, range_days"
                f" FROM {dbt_relation('stg_eventtrack__saved_funnels')} ORDER BY funnel_id"
            )
        ]
        rows = []
        for funnel in funnels:
            sql, params = saved_funnel_query(funnel, as_of)
            rows += saved_funnel_rows(funnel, as_of, [tuple(r) for r in conn.execute(psycopg_sql(sql), params)])
        replace_declared_table(conn, "funnel_results", rows)
    context.log.info("saved funnel results: %d funnels as of %s", len(funnels), as_of.isoformat())
    return MaterializeResult(metadata={"funnels": len(funnels), "rows": len(rows)})


funnel_assets = [funnel_results]
