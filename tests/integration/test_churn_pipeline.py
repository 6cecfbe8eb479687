"""Churn risk on planted behaviour: a synthetic population whose churners are generated from a known
driver (session frequency falling over three weeks before they stop), through the real dbt models and
the Dagster asset against the test Postgres.

The features and labels are checked against a recomputation from the planted events; the model must
find the driver (validation ROC AUC >= 0.80), and the same rows with shuffled labels must give ~0.5
(the pipeline does not leak the label). The features are built once for the module.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import httpx
import numpy as np
import psycopg
import pytest

from tests.conftest import RAW_TABLES, settings_for
from tests.integration.test_pipeline import ANALYTICS_SCHEMAS, EVENT_COLUMNS, Pipeline

USERS = 2000
HISTORY_DAYS = 60
HORIZON = 14
CUTOFF_WEEKS = 4
EVENT_TYPES = ("screen_view", "app_open", "search", "add_to_cart", "purchase", "share")


class Population:
    """Planted users: each has a first day, a daily activity probability, and maybe a churn day before
    which that probability falls linearly to nothing over 21 days (the known driver)."""

    def __init__(self, rng: random.Random, today: date):
        self.today = today
        self.days: dict[str, set[date]] = defaultdict(set)
        self.events_per_day: dict[tuple[str, date], int] = defaultdict(int)
        self.rows: list[tuple] = []
        received = datetime.now(UTC) - timedelta(hours=1)
        for i in range(USERS):
            user = f"planted-{i}"
            first = today - timedelta(days=rng.randrange(25, HISTORY_DAYS))
            rate = rng.uniform(0.25, 0.75)
            stop = today + timedelta(days=rng.randrange(-45, 20)) if rng.random() < 0.5 else None
            os_name, version = rng.choice(["ios", "android"]), rng.choice(["1.0", "1.1", "2.0"])
            day = first
            while day < today:
                p = rate
                if stop is not None:
                    left = (stop - day).days
                    p = 0.0 if left <= 0 else rate * min(1.0, left / 21)
                if rng.random() < p:
                    self._active_day(rng, user, day, os_name, version, received)
                day += timedelta(days=1)

    def _active_day(self, rng, user, day, os_name, version, received) -> None:
        self.days[user].add(day)
        for _ in range(rng.choice([1, 1, 2])):
            at = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=rng.randrange(60, 1300))
            for _ in range(rng.randrange(2, 5)):
                self.rows.append(
                    (uuid.uuid4(), rng.choice(EVENT_TYPES), user, f"{user}-d", None, version, os_name, at, received)
                )
                self.events_per_day[(user, day)] += 1
                at += timedelta(seconds=rng.randrange(20, 300))

    def expected(self, user: str, cutoff: date) -> dict | None:
        """Recency, frequency, events and the label of `user` at `cutoff`, from the planted days alone."""
        window = [d for d in self.days[user] if cutoff - timedelta(days=28) <= d < cutoff]
        if not window:
            return None
        returned = any(cutoff <= d < cutoff + timedelta(days=HORIZON) for d in self.days[user])
        return {
            "days_since_last_active": (cutoff - max(window)).days,
            "active_days_28d": len(window),
            "events_28d": sum(self.events_per_day[(user, d)] for d in window),
            "churned": None if cutoff + timedelta(days=HORIZON) > self.today else not returned,
        }


def settings(database_url: str, **overrides):
    return settings_for(
        database_url, **{"churn_cutoff_weeks": CUTOFF_WEEKS, "churn_horizon_days": HORIZON, **overrides}
    )


@pytest.fixture(scope="module")
def planted(dbt_env, database_url):
    """The planted events in the raw table, the analytics schemas rebuilt, the churn features built once."""
    from orchestration.dbt import churn_feature_models, dbt_models

    today = datetime.now(UTC).date()
    population = Population(random.Random(20261203), today)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(RAW_TABLES))
        for schema in ANALYTICS_SCHEMAS:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
        with conn.cursor().copy(f"COPY events ({columns}) FROM STDIN") as copy:
            for row in population.rows:
                copy.write_row(row)
    pipeline = Pipeline(settings(database_url))
    pipeline.materialize([dbt_models])
    pipeline.materialize([churn_feature_models])
    return population


def resources(database_url: str, **overrides) -> dict:
    """Resources of the churn assets with the module's settings and any overrides."""
    from orchestration.dbt import dbt_resource
    from orchestration.resources import EventtrackResource

    return {"dbt": dbt_resource(), "eventtrack": EventtrackResource.from_settings(settings(database_url, **overrides))}


@pytest.fixture(scope="module")
def trained(planted, database_url):
    """The churn asset and its check, materialized once on the planted features."""
    from dagster import materialize

    from orchestration.churn import churn_validation_auc, user_churn_scores

    return materialize([user_churn_scores, churn_validation_auc], resources=resources(database_url))


def feature_rows(database_url: str, cutoff: date):
    from orchestration.churn import read_feature_rows

    with psycopg.connect(database_url, autocommit=True) as conn:
        return read_feature_rows(conn, "cutoff_date = %(c)s", {"c": cutoff}, 10**9)


def test_features_and_labels_are_the_planted_ones(planted, database_url):
    """Every (cut-off, user) row, and only those, with recency, frequency, events and label as planted:
    the features read only the days before the cut-off, the label only the horizon after it."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT cutoff_date, distinct_id, days_since_last_active, active_days_28d, events_28d, churned"
            " FROM analytics.fct_user_churn_features"
        ).fetchall()
    got = {
        (c, u): dict(zip(("days_since_last_active", "active_days_28d", "events_28d", "churned"), r))
        for c, u, *r in rows
    }
    cutoffs = [planted.today - timedelta(days=7 * w) for w in range(CUTOFF_WEEKS + 1)]
    want = {}
    for user in planted.days:
        for cutoff in cutoffs:
            expected = planted.expected(user, cutoff)
            if expected is not None:
                want[(cutoff, user)] = expected
    assert len(want) > 4000
    assert got == want


def test_the_model_finds_the_planted_driver(planted, trained):
    result = trained
    assert result.success
    (materialization,) = result.asset_materializations_for_node("analytics__user_churn_scores")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["status"] == "trained", metadata["verdict"]
    assert metadata["roc_auc"] >= 0.80
    assert metadata["validation_cutoff"] == str(planted.today - timedelta(days=HORIZON))
    assert 0.05 < metadata["base_rate"] < 0.95 and 0 < metadata["pr_auc"] <= 1
    assert sum(b["users"] for b in metadata["calibration"]) == metadata["validation_rows"]
    (check,) = result.get_asset_check_evaluations()
    assert check.passed


def test_shuffled_labels_give_chance(planted, database_url):
    """The same rows, labels shuffled within each set: the model cannot do better than chance."""
    from orchestration.churn_model import train_and_validate

    rng = np.random.default_rng(7)
    validation = feature_rows(database_url, planted.today - timedelta(days=HORIZON))
    training = feature_rows(database_url, planted.today - timedelta(days=HORIZON + 7))
    honest = train_and_validate(training, validation)
    assert honest.metrics["roc_auc"] >= 0.80
    for rows in (training, validation):
        rows.churned = rng.permutation(rows.churned)
    shuffled = train_and_validate(training, validation)
    assert 0.40 <= shuffled.metrics["roc_auc"] <= 0.60


def test_scores_are_listed_highest_first_with_filters(trained, planted, admin, database_url):
    """The admin route pages through every score of the latest model, highest first; filters narrow it."""
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT distinct_id, score, model_id FROM analytics.user_churn_scores").fetchall()
        (model_id,) = conn.execute("SELECT model_id FROM analytics.churn_models WHERE status = 'trained'").fetchone()
    active = {u for u in planted.days if planted.expected(u, planted.today) is not None}
    assert {u for u, _, _ in stored} == active and {m for _, _, m in stored} == {model_id}

    seen, url = [], "/api/v1/analytics/admin/behaviour/churn/?limit=300"
    while url:
        body = admin.get(url).json()
        seen += body["results"]
        url = body["next"]
    assert [r["distinct_id"] for r in seen] == [
        u for u, _ in sorted(((u, -s) for u, s, _ in stored), key=lambda x: (x[1], x[0]))
    ]
    top = seen[0]
    assert top["model_id"] == model_id and top["cutoff_date"] == planted.today.isoformat()
    assert 1 <= len(top["top_features"]) <= 3 and all(f["effect"] > 0 for f in top["top_features"])

    high = admin.get(
        "/api/v1/analytics/admin/behaviour/churn/", params={"min_score": 0.8, "os_name": "ios", "limit": 1000}
    )
    results = high.json()["results"]
    assert results and all(r["score"] >= 0.8 and r["os_name"] == "ios" for r in results)
    assert len(results) == sum(1 for r in seen if r["score"] >= 0.8 and r["os_name"] == "ios")

    bad = admin.get("/api/v1/analytics/admin/behaviour/churn/", params={"min_score": "2"})
    assert bad.status_code == 400 and set(bad.json()) == {"error", "detail", "fields"}


def test_erasure_removes_a_persons_scores_and_features(trained, admin, database_url):
    user = "planted-1"
    with psycopg.connect(database_url) as conn:
        features = conn.execute(
            "SELECT count(*) FROM analytics.fct_user_churn_features WHERE distinct_id = %s", (user,)
        ).fetchone()[0]
        daily = conn.execute(
            "SELECT count(*) FROM analytics_intermediate.int_user_activity_daily WHERE distinct_id = %s", (user,)
        ).fetchone()[0]
        scores = conn.execute(
            "SELECT count(*) FROM analytics.user_churn_scores WHERE distinct_id = %s", (user,)
        ).fetchone()[0]
    assert features and daily
    body = admin.delete(f"/api/v1/analytics/admin/persons/{user}/").json()
    assert body["deleted"]["churn_scores"] == scores and body["deleted"]["churn_features"] == features + daily
    with psycopg.connect(database_url) as conn:
        for table in (
            "analytics.fct_user_churn_features",
            "analytics_intermediate.int_user_activity_daily",
            "analytics.user_churn_scores",
        ):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE distinct_id = %s", (user,)).fetchone()[0] == 0


def test_dashboard_page_shows_the_table_and_the_distribution(trained, server, admin_key, database_url):
    """Signed in, /admin/churn shows the latest model, the scores' distribution (its numbers sum to the
    users scored) and the highest scores first; a bad filter is a 400 page, not a 500."""
    with psycopg.connect(database_url) as conn:
        scored = conn.execute(
            "SELECT distinct_id FROM analytics.user_churn_scores ORDER BY score DESC, distinct_id"
        ).fetchall()
        (model_id,) = conn.execute(
            "SELECT model_id FROM analytics.churn_models ORDER BY trained_at DESC LIMIT 1"
        ).fetchone()
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        form = browser.get("/admin/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        browser.post("/admin/login", data={"api_key": admin_key, "csrf_token": csrf})
        page = browser.get("/admin/churn")
        bad = browser.get("/admin/churn", params={"min_score": "x"})
    assert page.status_code == 200, page.text
    assert model_id in page.text
    figure = page.text.split('data-chart="churn-distribution"')[1].split("</figure>")[0]
    assert sum(int(n) for n in re.findall(r'<td class="num">(\d+)</td>', figure)) == len(scored)
    table = page.text.split('id="churn-table"')[1]
    shown = re.findall(r"<tr>\s*<td>([^<]+)</td>", table)
    assert shown == [u for (u,) in scored[:50]]
    assert 'rel="next">Lower scores →</a>' in page.text
    assert bad.status_code == 400 and "min_score" in bad.text


def test_the_check_fails_below_the_floor(trained, database_url):
    from orchestration.churn import churn_validation_auc

    eventtrack = resources(database_url, churn_auc_floor=0.999)["eventtrack"]
    check = churn_validation_auc(eventtrack=eventtrack)
    assert not check.passed and check.metadata["floor"].value == 0.999


def test_too_little_history_says_so_and_keeps_the_scores(trained, database_url):
    """One cut-off a week back and a 14-day horizon: no label is known yet, so no model; the metadata and
    analytics.churn_models say why in words, the check passes without a verdict, the run succeeds."""
    from dagster import materialize

    from orchestration.churn import churn_validation_auc, user_churn_scores
    from orchestration.dbt import churn_feature_models

    short = resources(database_url, churn_cutoff_weeks=1)
    assert materialize([churn_feature_models], resources=short).success
    result = materialize([user_churn_scores, churn_validation_auc], resources=short)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("analytics__user_churn_scores")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["status"] == "no_verdict"
    assert metadata["verdict"].startswith("not enough history for a verdict: 0 cut-off(s) with a known label")
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.description.startswith("No verdict")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM analytics.user_churn_scores").fetchone()[0] > 0
        assert [s for (s,) in conn.execute("SELECT status FROM analytics.churn_models ORDER BY trained_at")] == [
            "trained",
            "no_verdict",
        ]


def test_before_the_first_weekly_run_the_route_answers_an_empty_page(planted, admin, database_url):
    """dbt declares the scores table with the daily models; the features table comes with the weekly job."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE analytics.fct_user_churn_features")
    answer = admin.get("/api/v1/analytics/admin/behaviour/churn/", params={"os_name": "ios"})
    assert answer.status_code == 200 and answer.json() == {"next": None, "previous": None, "results": []}
