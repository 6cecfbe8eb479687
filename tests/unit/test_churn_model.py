"""The churn model's pure parts: the time-based split, the verdicts, the metrics, the attribution."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from orchestration.churn_model import (
    CATEGORICAL_FEATURES,
    MIN_ROWS,
    NUMERIC_FEATURES,
    CategoryCodes,
    FeatureRows,
    class_verdict,
    score,
    time_split,
    train_and_validate,
    validation_metrics,
)

D = date(2026, 11, 30)


def weeks(*back: int) -> list[date]:
    return [D - timedelta(days=7 * w) for w in back]


def test_the_newest_labelled_cutoff_validates_the_older_ones_train_the_latest_is_scored():
    split = time_split(weeks(0, 1, 2, 3, 4, 5), weeks(2, 3, 4, 5))
    assert split.verdict is None
    assert split.training_cutoffs == weeks(5, 4, 3) and split.validation_cutoff == weeks(2)[0]
    assert split.scored_cutoff == D


def test_fewer_than_two_labelled_cutoffs_is_no_verdict_in_words():
    for labelled in ([], weeks(2)):
        split = time_split(weeks(0, 1, 2), labelled)
        assert split.verdict.startswith(f"not enough history for a verdict: {len(labelled)} cut-off(s)")
        assert split.scored_cutoff == D


def test_a_set_without_enough_of_each_class_is_no_verdict():
    assert class_verdict("training", np.zeros(MIN_ROWS)) is not None
    assert class_verdict("training", np.array([1.0] * 5 + [0.0] * (MIN_ROWS - 5))) is not None
    assert class_verdict("training", np.array([1.0] * 50 + [0.0] * MIN_ROWS)) is None


def test_metrics_of_known_scores():
    labels = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    scores = np.array([0.05, 0.15, 0.95, 0.85, 0.55, 0.45])
    metrics = validation_metrics(labels, scores)
    # Pairs (churner, stayer) ranked right: 8 of 9 (0.45 < 0.55).
    assert abs(metrics["roc_auc"] - 8 / 9) < 1e-12 and metrics["base_rate"] == 0.5
    assert metrics["brier"] == np.mean((scores - labels) ** 2)
    assert [(b["bin"], b["users"], b["churn_rate"]) for b in metrics["calibration"]] == [
        ("0.0-0.1", 1, 0.0), ("0.1-0.2", 1, 0.0), ("0.4-0.5", 1, 1.0),
        ("0.5-0.6", 1, 0.0), ("0.8-0.9", 1, 1.0), ("0.9-1.0", 1, 1.0),
    ]  # fmt: skip


def rows(rng: np.random.Generator, n: int) -> FeatureRows:
    """Churn driven by recency alone; the other features are noise; one category never seen in training."""
    numeric = rng.random((n, len(NUMERIC_FEATURES)))
    numeric[:, 0] = rng.integers(1, 29, n)
    churned = (numeric[:, 0] + rng.normal(0, 4, n) > 18).astype(float)
    cutoffs = np.array([D] * n, dtype="datetime64[D]")
    categories = [list(rng.choice(["1.0", "2.0"], n)), list(rng.choice(["ios", "android"], n))]
    assert len(categories) == len(CATEGORICAL_FEATURES)
    return FeatureRows(cutoffs, [f"u{i}" for i in range(n)], numeric, categories, churned)


def test_the_top_feature_of_users_at_risk_is_the_driver():
    rng = np.random.default_rng(3)
    model = train_and_validate(rows(rng, 3000), rows(rng, 1000))
    assert model.metrics["roc_auc"] > 0.8
    scored = rows(rng, 500)
    scores, explained = score(model, scored)
    at_risk = [e for s, e in zip(scores, explained) if s > 0.8]
    assert at_risk and all(e[0]["feature"] == "days_since_last_active" for e in at_risk)
    median = float(np.median(scored.numeric[:, 0]))
    assert all(e[0]["effect"] > 0.5 and e[0]["median"] == median for e in at_risk)


def test_categories_unseen_in_training_are_missing():
    codes = CategoryCodes.fit([["1.0", "2.0", None], ["ios", "ios", "android"]])
    unseen = FeatureRows(
        np.array([D], dtype="datetime64[D]"),
        ["u"],
        np.zeros((1, len(NUMERIC_FEATURES))),
        [["3.0"], ["ios"]],
        np.array([np.nan]),
    )
    matrix = codes.matrix(unseen)
    assert np.isnan(matrix[0, len(NUMERIC_FEATURES)]) and matrix[0, -1] == codes.codes[1]["ios"]
