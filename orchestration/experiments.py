"""The statistics half of the experiment results: a Python asset over the dbt counts.

dbt counts exposures and conversions (marts/experiments/experiment_variant_counts);
this asset adds what SQL is the wrong tool for (orchestration/experiment_stats.py)
and replaces analytics.experiment_results in one transaction, so readers see the
previous results or the new ones, never a mix.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from orchestration.experiment_stats import SRM_ALPHA, compare, rate, srm_p_value
from orchestration.resources import EventtrackResource, dbt_relation, replace_declared_table

COUNTS = AssetKey(["analytics", "experiment_variant_counts"])
# The table itself is a dbt model (marts/experiments/experiment_results.sql: its columns, types and
# key are declared once, in the model's yml); this asset fills it.
RESULTS_TABLE_DEFINITION = AssetKey(["analytics", "experiment_results_table"])
# The dbt models the results are built from and written to (for jobs that rebuild only these). Not
# the staging views they read: those exist from start-up and are rebuilt by the daily
# sessions_and_staging job only (orchestration.runner.build_dbt_views says why).
EXPERIMENT_DBT_MODELS = [
    AssetKey(["analytics_intermediate", "int_experiment_exposures"]),
    COUNTS,
    RESULTS_TABLE_DEFINITION,
]

_COUNT_COLUMNS = (
    "experiment_id", "variant", "variant_order", "is_control", "expected_percentage",
    "exposures", "conversions", "multi_exposure_users", "secondary_conversions",
)  # fmt: skip


def results_rows(counts: Iterable[dict[str, Any]], computed_at: datetime) -> list[dict[str, Any]]:
    """Rows of experiment_variant_counts -> rows of experiment_results (pure).

    Every variant is compared with its experiment's control; the control row has
    no uplift, interval, p-value or probability. The SRM p-value covers the whole
    experiment and is repeated on each of its rows.
    """
    by_experiment: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in counts:
        by_experiment[row["experiment_id"]].append(row)
    out: list[dict[str, Any]] = []
    for experiment_id, variants in sorted(by_experiment.items()):
        variants.sort(key=lambda r: r["variant_order"])
        control = next((v for v in variants if v["is_control"]), None)
        share_total = sum(max(v["expected_percentage"], 0.0) for v in variants) or 1.0
        srm = srm_p_value([v["exposures"] for v in variants], [v["expected_percentage"] for v in variants])
        for v in variants:
            n, x = v["exposures"], v["conversions"]
            row = {
                "experiment_id": experiment_id,
                "variant": v["variant"],
                "is_control": v["is_control"],
                "expected_share": max(v["expected_percentage"], 0.0) / share_total,
                "exposures": n,
                "conversions": x,
                "conversion_rate": rate(x, n),
                "absolute_uplift": None,
                "relative_uplift": None,
                "uplift_ci_low": None,
                "uplift_ci_high": None,
                "probability_to_beat_control": None,
                "p_value": None,
                "srm_p_value": srm,
                "srm_warning": srm is not None and srm < SRM_ALPHA,
                "multi_exposure_users": v["multi_exposure_users"],
                "secondary_metrics": {
                    event: {"conversions": c, "conversion_rate": rate(c, n)}
                    for event, c in sorted((v["secondary_conversions"] or {}).items())
                },
                "computed_at": computed_at,
            }
            if control is not None and not v["is_control"]:
                result = compare(control["conversions"], control["exposures"], x, n)
                row.update(
                    absolute_uplift=result.absolute_uplift,
                    relative_uplift=result.relative_uplift,
                    uplift_ci_low=result.ci_low,
                    uplift_ci_high=result.ci_high,
                    probability_to_beat_control=result.probability_to_beat_control,
                    p_value=result.p_value,
                )
            out.append(row)
    return out


@asset(
    key=AssetKey(["analytics", "experiment_results"]),
    deps=[COUNTS, RESULTS_TABLE_DEFINITION],
    group_name="marts",
    kinds={"python", "postgres"},
    description=(
        "One row per experiment and variant: exposures, conversions, uplift against control with a 95% "
        "interval, probability to beat control, z-test p-value, sample-ratio-mismatch check (docs/analytics.md)."
    ),
)
def experiment_results(context: AssetExecutionContext, eventtrack: EventtrackResource) -> MaterializeResult:
    computed_at = datetime.now(UTC)
    with eventtrack.connect() as conn:
        cur = conn.execute(f"SELECT {', '.join(_COUNT_COLUMNS)} FROM {dbt_relation('experiment_variant_counts')}")
        counts = [dict(zip(_COUNT_COLUMNS, r)) for r in cur.fetchall()]
        rows = results_rows(counts, computed_at)
        replace_declared_table(
            conn,
            "experiment_results",
            ({**r, "secondary_metrics": orjson.dumps(r["secondary_metrics"]).decode()} for r in rows),
        )
    warnings = sorted({r["experiment_id"] for r in rows if r["srm_warning"]})
    context.log.info("experiment results: %d rows, SRM warnings for %s", len(rows), warnings)
    return MaterializeResult(
        metadata={
            "rows": len(rows),
            "experiments": len({r["experiment_id"] for r in rows}),
            "srm_warnings": len(warnings),
        }
    )


experiment_assets = [experiment_results]
