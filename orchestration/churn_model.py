"""The churn model (pure: arrays in, model, metrics and scores out; docs/analytics.md "Churn risk").

- Split by time: the newest cut-off whose label is known validates; the older labelled ones train.
  No verdict (and no model) without at least one training and one validation cut-off, MIN_ROWS
  rows and MIN_CLASS_ROWS of each class in both.
- Model: scikit-learn's HistGradientBoostingClassifier with fixed PARAMS (random_state included),
  app version and OS as categorical features (the MAX_CATEGORIES most frequent in training; the
  others and missing values go to the model's missing-value branch).
- Metrics on the validation set: ROC AUC, PR AUC (average precision), the base rate, the Brier
  score, and a calibration table (10 equal-width score bins: users, mean score, churn rate).
- Top contributing features of a user: each feature's value replaced by the population median
  (the most frequent category for app version and OS), one substitution at a time; the features
  whose substitution lowers the score most, up to TOP_FEATURES, with the fall as `effect`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

NUMERIC_FEATURES = (
    "days_since_last_active",
    "active_days_28d",
    "events_28d",
    "sessions_28d",
    "avg_session_seconds_28d",
    "distinct_event_types_per_day",
    "top_type_1_events_28d",
    "top_type_2_events_28d",
    "top_type_3_events_28d",
    "top_type_4_events_28d",
    "top_type_5_events_28d",
    "days_since_first_seen",
    "sessions_7d",
    "sessions_prev_21d",
    "sessions_trend_7v21",
    "events_trend_7v21",
)
CATEGORICAL_FEATURES = ("app_version", "os_name")
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES

PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_iter": 150,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 20261203,
}
MAX_CATEGORIES = 50
MIN_ROWS = 200
MIN_CLASS_ROWS = 20
TOP_FEATURES = 3
CALIBRATION_BINS = 10
# OpenMP threads of training and prediction: half the cores. OpenMP threads spin while they wait, so on
# cores shared with Postgres and other jobs all of them are slower than fewer (measured on 2 busy cores:
# 18.4 s to train on 27k rows with 2 threads, 2.6 s with 1).
MODEL_THREADS = max(1, (os.cpu_count() or 2) // 2)
# Rows per prediction call when explaining scores: bounds the memory of the substituted copies.
EXPLAIN_CHUNK = 200_000


@dataclass
class FeatureRows:
    """Rows of fct_user_churn_features: numeric features as floats (NaN for null), categories as text or None."""

    cutoffs: np.ndarray  # datetime64[D]
    distinct_ids: list[str]
    numeric: np.ndarray  # (rows, len(NUMERIC_FEATURES)) float64
    categories: list[list[str | None]]  # one list per CATEGORICAL_FEATURES column
    churned: np.ndarray  # float64: 1.0, 0.0, NaN when unknown

    def take(self, mask: np.ndarray) -> FeatureRows:
        index = np.flatnonzero(mask)
        return FeatureRows(
            self.cutoffs[index],
            [self.distinct_ids[i] for i in index],
            self.numeric[index],
            [[column[i] for i in index] for column in self.categories],
            self.churned[index],
        )

    def __len__(self) -> int:
        return len(self.distinct_ids)

    @classmethod
    def concat(cls, parts: Sequence[FeatureRows]) -> FeatureRows:
        if not parts:
            return rows_of([])
        return cls(
            np.concatenate([p.cutoffs for p in parts]),
            [i for p in parts for i in p.distinct_ids],
            np.concatenate([p.numeric for p in parts]),
            [[v for p in parts for v in p.categories[k]] for k in range(len(CATEGORICAL_FEATURES))],
            np.concatenate([p.churned for p in parts]),
        )


@dataclass(frozen=True)
class Split:
    training_cutoffs: list[date]
    validation_cutoff: date | None
    scored_cutoff: date | None
    verdict: str | None  # why there is no model; None when there is one to train


def time_split(cutoffs: Sequence[date], labelled: Sequence[date]) -> Split:
    """Train on the older labelled cut-offs, validate on the newest labelled one, score the latest of `cutoffs`."""
    labelled = sorted(labelled)
    scored = max(cutoffs) if cutoffs else None
    if len(labelled) < 2:
        verdict = (
            f"not enough history for a verdict: {len(labelled)} cut-off(s) with a known label, at least 2 needed"
            " (one to train on, the newest to validate on)"
        )
        return Split(labelled[:-1], labelled[-1] if labelled else None, scored, verdict)
    return Split(labelled[:-1], labelled[-1], scored, None)


def class_verdict(name: str, labels: np.ndarray) -> str | None:
    """Why `labels` cannot train or validate a model, or None."""
    churners = int(labels.sum())
    if len(labels) < MIN_ROWS or min(churners, len(labels) - churners) < MIN_CLASS_ROWS:
        return (
            f"not enough history for a verdict: the {name} set has {len(labels)} rows, {churners} churned"
            f" (at least {MIN_ROWS} rows and {MIN_CLASS_ROWS} of each class needed)"
        )
    return None


@dataclass
class CategoryCodes:
    """Category text -> code, learned on the training rows (the MAX_CATEGORIES most frequent per column)."""

    codes: list[dict[str, int]] = field(default_factory=list)

    @classmethod
    def fit(cls, categories: list[list[str | None]]) -> CategoryCodes:
        codes = []
        for column in categories:
            common = Counter(v for v in column if v is not None).most_common(MAX_CATEGORIES)
            codes.append({value: code for code, (value, _) in enumerate(sorted(common))})
        return cls(codes)

    def matrix(self, rows: FeatureRows) -> np.ndarray:
        coded = [
            np.array([mapping.get(v, np.nan) if v is not None else np.nan for v in column], dtype=np.float64)
            for mapping, column in zip(self.codes, rows.categories)
        ]
        return np.column_stack([rows.numeric, *coded]) if coded else rows.numeric

    def label(self, column: int, code: float) -> str | None:
        if np.isnan(code):
            return None
        mapping = self.codes[column]
        return next(v for v, c in mapping.items() if c == int(code))


def new_classifier() -> HistGradientBoostingClassifier:
    categorical = [False] * len(NUMERIC_FEATURES) + [True] * len(CATEGORICAL_FEATURES)
    return HistGradientBoostingClassifier(categorical_features=categorical, **PARAMS)


def validation_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """ROC AUC, PR AUC, base rate, Brier score and the calibration table of `scores` against `labels`."""
    bins = np.minimum((scores * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    calibration = []
    for b in range(CALIBRATION_BINS):
        members = bins == b
        if members.any():
            calibration.append(
                {
                    "bin": f"{b / CALIBRATION_BINS:.1f}-{(b + 1) / CALIBRATION_BINS:.1f}",
                    "users": int(members.sum()),
                    "mean_score": float(scores[members].mean()),
                    "churn_rate": float(labels[members].mean()),
                }
            )
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "base_rate": float(labels.mean()),
        "brier": float(brier_score_loss(labels, scores)),
        "validation_rows": len(labels),
        "calibration": calibration,
    }


@dataclass
class TrainedModel:
    classifier: HistGradientBoostingClassifier
    codes: CategoryCodes
    metrics: dict[str, Any]
    training_rows: int
    validation_rows: int


def train_and_validate(training: FeatureRows, validation: FeatureRows) -> TrainedModel | str:
    """A model trained on `training`, with its metrics on `validation`; or the verdict why not."""
    for name, rows in (("training", training), ("validation", validation)):
        verdict = class_verdict(name, rows.churned)
        if verdict:
            return verdict
    codes = CategoryCodes.fit(training.categories)
    with threadpool_limits(MODEL_THREADS):
        classifier = new_classifier().fit(codes.matrix(training), training.churned.astype(int))
        scores = classifier.predict_proba(codes.matrix(validation))[:, 1]
    return TrainedModel(
        classifier, codes, validation_metrics(validation.churned, scores), len(training), len(validation)
    )


def explain(model: TrainedModel, matrix: np.ndarray, scores: np.ndarray) -> list[list[dict[str, Any]]]:
    """Per row, up to TOP_FEATURES features whose replacement by the population median lowers its score most."""
    reference = np.array([_typical(matrix[:, j], j >= len(NUMERIC_FEATURES)) for j in range(matrix.shape[1])])
    effects = np.empty_like(matrix)
    for start in range(0, len(matrix), EXPLAIN_CHUNK):
        chunk = matrix[start : start + EXPLAIN_CHUNK]
        for j in range(matrix.shape[1]):
            substituted = chunk.copy()
            substituted[:, j] = reference[j]
            effects[start : start + len(chunk), j] = (
                scores[start : start + len(chunk)] - model.classifier.predict_proba(substituted)[:, 1]
            )
    order = np.argsort(-effects, axis=1)[:, :TOP_FEATURES]
    out = []
    for i, columns in enumerate(order):
        out.append(
            [
                {
                    "feature": FEATURES[j],
                    "value": _shown(model, j, matrix[i, j]),
                    "median": _shown(model, j, reference[j]),
                    "effect": round(float(effects[i, j]), 4),
                }
                for j in columns
                if effects[i, j] > 0
            ]
        )
    return out


def _typical(column: np.ndarray, categorical: bool) -> float:
    present = column[~np.isnan(column)]
    if not len(present):
        return np.nan
    if categorical:
        values, counts = np.unique(present, return_counts=True)
        return float(values[np.argmax(counts)])
    return float(np.median(present))


def _shown(model: TrainedModel, column: int, value: float) -> Any:
    if column >= len(NUMERIC_FEATURES):
        return model.codes.label(column - len(NUMERIC_FEATURES), value)
    return None if np.isnan(value) else round(float(value), 4)


def score(model: TrainedModel, rows: FeatureRows) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
    """Scores of `rows` and their top contributing features."""
    matrix = model.codes.matrix(rows)
    with threadpool_limits(MODEL_THREADS):
        scores = model.classifier.predict_proba(matrix)[:, 1]
        return scores, explain(model, matrix, scores)


def rows_of(records: Sequence[Sequence[Any]]) -> FeatureRows:
    """FeatureRows from query rows (cutoff_date, distinct_id, *NUMERIC_FEATURES, *CATEGORICAL_FEATURES, churned)."""
    n_numeric = len(NUMERIC_FEATURES)
    numeric = np.array(
        [[np.nan if v is None else v for v in r[2 : 2 + n_numeric]] for r in records], dtype=np.float64
    ).reshape(len(records), n_numeric)
    categories = [[r[2 + n_numeric + k] for r in records] for k in range(len(CATEGORICAL_FEATURES))]
    churned = np.array([np.nan if r[-1] is None else float(r[-1]) for r in records], dtype=np.float64)
    cutoffs = np.array([r[0] for r in records], dtype="datetime64[D]")
    return FeatureRows(cutoffs, [r[1] for r in records], numeric, categories, churned)
