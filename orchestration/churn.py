"""Churn risk: the weekly model over the dbt churn features, its scores, and the check of its quality.

dbt builds the features at weekly cut-offs (marts/churn/fct_user_churn_features.sql); this asset
trains a model on a time-based split (orchestration/churn_model.py), appends what it did to
analytics.churn_models, and replaces analytics.user_churn_scores with the scores of the users active
before the latest cut-off, each naming its model. Both tables are dbt models (their yml declares
them); docs/analytics.md, "Churn risk", says how to read them.
"""

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import sklearn
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from orchestration.churn_model import (
    CATEGORICAL_FEATURES,
    FEATURES,
    NUMERIC_FEATURES,
    PARAMS,
    FeatureRows,
    rows_of,
    score,
    time_split,
    train_and_validate,
)
from orchestration.resources import EventtrackResource, append_to_declared_table, dbt_relation, replace_declared_table

FEATURES_MODEL = AssetKey(["analytics", "fct_user_churn_features"])
TOP_EVENT_TYPES = AssetKey(["analytics_intermediate", "int_churn_top_event_types"])
# The tables are dbt models (marts/churn/_churn__models.yml: columns, types, keys declared once); this asset fills them.
SCORES_TABLE_DEFINITION = AssetKey(["analytics", "user_churn_scores_table"])
MODELS_TABLE_DEFINITION = AssetKey(["analytics", "churn_models_table"])
# Rows read per set (a deterministic sample by user and cut-off above it): bounds the weekly run's time and memory.
MAX_TRAINING_ROWS = 1_000_000
MAX_VALIDATION_ROWS = 500_000
# Rows turned into arrays at a time: the query's Python rows never all exist at once.
READ_CHUNK = 100_000

_COLUMNS = ("cutoff_date", "distinct_id", *NUMERIC_FEATURES, *CATEGORICAL_FEATURES, "churned")


def read_feature_rows(conn: psycopg.Connection, where: str, params: dict[str, Any], cap: int) -> FeatureRows:
    """The feature rows matching `where`, a deterministic sample of about `cap` of them when there are more."""
    table = dbt_relation("fct_user_churn_features")
    (total,) = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()
    keep = 1024 if total <= cap else max(1, math.ceil(1024 * cap / total))
    numeric = [f"{c}::double precision" for c in NUMERIC_FEATURES]
    sql = (
        f"SELECT cutoff_date, distinct_id, {', '.join(numeric)}, {', '.join(CATEGORICAL_FEATURES)}, churned"
        f" FROM {table} WHERE {where} AND (hashtext(distinct_id || cutoff_date::text) & 1023) < %(keep)s"
        " ORDER BY cutoff_date, distinct_id"
    )
    parts = []
    with conn.cursor(binary=True) as cur:
        cur.execute(sql, {**params, "keep": keep})
        while chunk := cur.fetchmany(READ_CHUNK):
            parts.append(rows_of(chunk))
    return FeatureRows.concat(parts)


def model_id_of(trained_at: datetime) -> str:
    return f"churn-{trained_at:%Y%m%dT%H%M%S.%fZ}"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def train_and_score(conn: psycopg.Connection, horizon_days: int, now: datetime) -> dict[str, Any]:
    """One run: the model row it appended to analytics.churn_models (with its metrics), and the scores written."""
    table = dbt_relation("fct_user_churn_features")
    cutoffs = conn.execute(
        f"SELECT cutoff_date, bool_or(churned IS NOT NULL) FROM {table} GROUP BY cutoff_date ORDER BY cutoff_date"
    ).fetchall()
    split = time_split([c for c, _ in cutoffs], [c for c, known in cutoffs if known])
    top_types = [
        t
        for (t,) in conn.execute(
            f"SELECT event_type FROM {dbt_relation('int_churn_top_event_types')} ORDER BY type_rank"
        )
    ]
    row: dict[str, Any] = {
        "model_id": model_id_of(now),
        "trained_at": now,
        "status": "no_verdict",
        "verdict": split.verdict,
        "scored_cutoff": split.scored_cutoff,
        "horizon_days": horizon_days,
        "training_cutoffs": _json([c.isoformat() for c in split.training_cutoffs]),
        "validation_cutoff": split.validation_cutoff,
        "training_rows": None,
        "validation_rows": None,
        "scored_users": None,
        "features": _json(list(FEATURES)),
        "top_event_types": _json(top_types),
        "params": _json(
            {"classifier": "HistGradientBoostingClassifier", "scikit_learn": sklearn.__version__, **PARAMS}
        ),
        "metrics": None,
    }
    metrics: dict[str, Any] | None = None
    if split.verdict is None:
        training = read_feature_rows(conn, "cutoff_date = ANY(%(c)s)", {"c": split.training_cutoffs}, MAX_TRAINING_ROWS)
        validation = read_feature_rows(conn, "cutoff_date = %(c)s", {"c": split.validation_cutoff}, MAX_VALIDATION_ROWS)
        model = train_and_validate(training, validation)
        if isinstance(model, str):
            row["verdict"] = model
        else:
            scored = read_feature_rows(conn, "cutoff_date = %(c)s", {"c": split.scored_cutoff}, 2**62)
            scores, explained = score(model, scored)
            metrics = model.metrics
            row.update(
                status="trained",
                training_rows=model.training_rows,
                validation_rows=model.validation_rows,
                scored_users=len(scored),
                metrics=_json(metrics),
                verdict=(
                    f"trained on {model.training_rows} rows of {len(split.training_cutoffs)} cut-off(s), validated on"
                    f" {split.validation_cutoff}: ROC AUC {metrics['roc_auc']:.3f}, base rate {metrics['base_rate']:.3f}"
                ),
            )
            with conn.transaction():
                append_to_declared_table(conn, "fct_churn_models", [row])
                replace_declared_table(
                    conn,
                    "fct_user_churn_scores",
                    (
                        {
                            "distinct_id": distinct_id,
                            "score": float(s),
                            "scored_at": now,
                            "cutoff_date": split.scored_cutoff,
                            "model_id": row["model_id"],
                            "top_features": _json(top),
                        }
                        for distinct_id, s, top in zip(scored.distinct_ids, scores, explained)
                    ),
                )
            return {**row, "metrics": metrics}
    # No model: the row says why; the previous scores (each naming its model) stay.
    append_to_declared_table(conn, "fct_churn_models", [row])
    return row


@asset(
    key=AssetKey(["analytics", "user_churn_scores"]),
    deps=[FEATURES_MODEL, TOP_EVENT_TYPES, SCORES_TABLE_DEFINITION, MODELS_TABLE_DEFINITION],
    group_name="churn",
    kinds={"python", "scikitlearn", "postgres"},
    description=(
        "Churn-risk score of every user active in the 28 days before the latest cut-off, from a model trained "
        "this run on the older cut-offs and validated on the newest labelled one (docs/analytics.md, Churn risk)."
    ),
)
def user_churn_scores(context: AssetExecutionContext, eventtrack: EventtrackResource) -> MaterializeResult:
    with eventtrack.connect() as conn:
        row = train_and_score(conn, eventtrack.churn_horizon_days, datetime.now(UTC))
    context.log.info("churn model %s: %s", row["model_id"], row["verdict"])
    metadata: dict[str, Any] = {
        "model_id": row["model_id"],
        "status": row["status"],
        "verdict": MetadataValue.text(row["verdict"]),
        "scored_cutoff": str(row["scored_cutoff"]),
        "validation_cutoff": str(row["validation_cutoff"]),
    }
    metrics = row["metrics"]
    if metrics:
        metadata.update(
            roc_auc=metrics["roc_auc"],
            pr_auc=metrics["pr_auc"],
            base_rate=metrics["base_rate"],
            brier=metrics["brier"],
            training_rows=row["training_rows"],
            validation_rows=row["validation_rows"],
            scored_users=row["scored_users"],
            calibration=MetadataValue.json(metrics["calibration"]),
        )
    return MaterializeResult(metadata=metadata)


def latest_model(conn: psycopg.Connection) -> dict[str, Any] | None:
    cur = conn.execute(
        f"SELECT model_id, status, verdict, metrics FROM {dbt_relation('fct_churn_models')}"
        " ORDER BY trained_at DESC LIMIT 1"
    )
    found = cur.fetchone()
    return dict(zip(("model_id", "status", "verdict", "metrics"), found)) if found else None


@asset_check(
    asset=user_churn_scores,
    description="The latest churn model's validation ROC AUC is at least CHURN_AUC_FLOOR (no verdict: passes, says so).",
)
def churn_validation_auc(eventtrack: EventtrackResource) -> AssetCheckResult:
    with eventtrack.connect() as conn:
        model = latest_model(conn)
    floor = eventtrack.churn_auc_floor
    if model is None or model["status"] != "trained":
        verdict = model["verdict"] if model else "no churn model yet"
        return AssetCheckResult(passed=True, description=f"No verdict: {verdict}", metadata={"floor": floor})
    auc = model["metrics"]["roc_auc"]
    return AssetCheckResult(
        passed=auc >= floor,
        description=f"Validation ROC AUC {auc:.3f} against the floor {floor}",
        metadata={"model_id": model["model_id"], "roc_auc": auc, "floor": floor},
    )


churn_assets = [user_churn_scores]
churn_checks = [churn_validation_auc]
