"""Experiment results end to end: planted data through the HTTP API, dbt + Dagster, the results route.

Two experiments with a known answer: a multivariate flag with planted conversion
rates, a planted sample-ratio mismatch, users exposed to both variants, repeated
exposures, goal events before exposure and after the window, responses that are
not variants; and a boolean flag. Every number of analytics.agg_experiment_results
is compared with a computation in Python over the generated events, the
statistics with scipy's own tests (not orchestration/experiment_stats.py).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from scipy import integrate, stats

EXPOSURE = "$feature_flag_called"


def _ts(value: datetime) -> str:
    return value.isoformat()


class Planted:
    """The generated events, and the expected results computed from them alone."""

    def __init__(self, rng: random.Random, start: datetime, end: datetime):
        self.start, self.end = start, end
        self.events: list[dict] = []
        self.rng = rng

    def at(self, low: datetime, high: datetime) -> datetime:
        return low + timedelta(seconds=self.rng.randrange(int((high - low).total_seconds())))

    def add(self, name: str, user: str, when: datetime, **properties) -> None:
        self.events.append({"event_type": name, "distinct_id": user, "timestamp": _ts(when), "properties": properties})

    def expected(self, flag: str, variants: list[str], goal: str, secondary: list[str]) -> dict:
        """First exposure, variants seen, conversions: the definitions of docs/analytics.md, applied to self.events."""
        seen: dict[str, set] = defaultdict(set)
        first: dict[str, datetime] = {}
        for e in self.events:
            when = datetime.fromisoformat(e["timestamp"])
            response = e["properties"].get("$feature_flag_response")
            response = str(response).lower() if isinstance(response, bool) else response
            if (
                e["event_type"] == EXPOSURE
                and e["properties"].get("$feature_flag") == flag
                and self.start <= when < self.end
                and response in variants
            ):
                seen[e["distinct_id"]].add(response)
                first[e["distinct_id"]] = min(first.get(e["distinct_id"], when), when)
        single = {u: next(iter(v)) for u, v in seen.items() if len(v) == 1}

        def converted(user: str, name: str) -> bool:
            return any(
                e["event_type"] == name
                and e["distinct_id"] == user
                and first[user] <= datetime.fromisoformat(e["timestamp"]) < self.end
                for e in self.events
            )

        rows = {v: {"exposures": 0, "conversions": 0, **{s: 0 for s in secondary}} for v in variants}
        for user, variant in single.items():
            rows[variant]["exposures"] += 1
            rows[variant]["conversions"] += converted(user, goal)
            for s in secondary:
                rows[variant][s] += converted(user, s)
        return {"rows": rows, "multi": sum(1 for v in seen.values() if len(v) > 1)}


def _independent_stats(xc: int, nc: int, xt: int, nt: int) -> dict:
    """The statistics by other means: scipy's 2x2 chi-square (= pooled z-test), quad integration of the Beta posteriors."""
    pc, pt = xc / nc, xt / nt
    chi2 = stats.chi2_contingency([[xc, nc - xc], [xt, nt - xt]], correction=False)
    control, treatment = stats.beta(1 + xc, 1 + nc - xc), stats.beta(1 + xt, 1 + nt - xt)
    prob, _ = integrate.quad(lambda p: control.pdf(p) * treatment.sf(p), 0, 1, points=[pc, pt], limit=500)
    half = stats.norm.ppf(0.975) * math.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
    return {
        "absolute_uplift": pt - pc,
        "relative_uplift": (pt - pc) / pc,
        "uplift_ci_low": pt - pc - half,
        "uplift_ci_high": pt - pc + half,
        "p_value": chi2.pvalue,
        "probability_to_beat_control": prob,
    }


def assert_results_match(
    admin,
    data: Planted,
    experiment_id: int,
    flag_key: str,
    variants: list[str],
    control: str,
    goal: str,
    secondary: list[str],
    shares: list[float],
) -> None:
    """Every number of the results route equals the computation over data.events (statistics by scipy)."""
    expected = data.expected(flag_key, variants, goal, secondary)
    body = admin.get(f"/api/v1/analytics/admin/experiments/{experiment_id}/results/").json()
    assert body["computed_at"] is not None
    rows = {r["variant"]: r for r in body["results"]}
    assert sorted(rows) == sorted(variants)
    observed = [expected["rows"][v]["exposures"] for v in variants]
    srm = stats.chisquare(observed, [sum(observed) * s for s in shares]).pvalue
    c = expected["rows"][control]
    for variant in variants:
        want, got = expected["rows"][variant], rows[variant]
        assert got["exposures"] == want["exposures"]
        assert got["conversions"] == want["conversions"]
        assert got["conversion_rate"] == pytest.approx(want["conversions"] / want["exposures"], rel=1e-12)
        assert got["multi_exposure_users"] == expected["multi"]
        assert got["srm_p_value"] == pytest.approx(srm, rel=1e-9)
        assert got["srm_warning"] == (srm < 0.001)
        assert got["is_control"] == (variant == control)
        for name in secondary:
            assert got["secondary_metrics"][name]["conversions"] == want[name]
        if variant == control:
            assert got["p_value"] is None and got["absolute_uplift"] is None
            continue
        independent = _independent_stats(c["conversions"], c["exposures"], want["conversions"], want["exposures"])
        for name, value in independent.items():
            assert got[name] == pytest.approx(value, rel=1e-7, abs=1e-10), name


def _post_events(api, events: list[dict]) -> None:
    for i in range(0, len(events), 1000):
        response = api.post("/api/v1/analytics/batch/", json={"events": events[i : i + 1000]})
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == []


@pytest.fixture
def experiments_clean(db):
    db.execute("DELETE FROM experiments")
    yield
    db.execute("DELETE FROM experiments")


def test_experiment_results_match_the_planted_answer(api, admin, db, pipeline, experiments_clean):  # noqa: F811
    from orchestration.dbt import dbt_models
    from orchestration.experiments import experiment_results

    rng = random.Random(20261125)
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(days=4), now - timedelta(hours=2)
    data = Planted(rng, start, end)

    flag = admin.post(
        "/api/v1/analytics/admin/feature-flags/",
        json={
            "key": "checkout-v2",
            "rollout_percentage": 100,
            "variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}],
        },
    )
    assert flag.status_code == 201, flag.text
    bool_flag = admin.post(
        "/api/v1/analytics/admin/feature-flags/", json={"key": "new-onboarding", "rollout_percentage": 30}
    )
    assert bool_flag.status_code == 201, bool_flag.text

    # Planted: 1000 control users converting at 10%, 1200 test users at 15% (a 1000:1200 split
    # under an expected 50/50: sample-ratio mismatch), 30 users who saw both variants.
    for variant, users, converters in (("control", 1000, 100), ("test", 1200, 180)):
        for i in range(users):
            user = f"{variant}-{i}"
            seen_at = data.at(start, end - timedelta(hours=3))
            data.add(EXPOSURE, user, seen_at, **{"$feature_flag": "checkout-v2", "$feature_flag_response": variant})
            if i % 4 == 0:  # repeated exposures count once
                data.add(
                    EXPOSURE,
                    user,
                    data.at(seen_at, end),
                    **{"$feature_flag": "checkout-v2", "$feature_flag_response": variant},
                )
            if i < converters:
                data.add("purchase", user, seen_at + timedelta(minutes=rng.randrange(1, 120)))
            elif i % 7 == 0:  # a purchase before the exposure, or after the window: not a conversion
                data.add("purchase", user, seen_at - timedelta(minutes=5) if i % 2 else data.at(end, now))
            if i % 3 == 0:
                data.add("add_to_cart", user, seen_at + timedelta(minutes=1))
    for i in range(30):
        user = f"both-{i}"
        data.add(
            EXPOSURE, user, data.at(start, end), **{"$feature_flag": "checkout-v2", "$feature_flag_response": "control"}
        )
        data.add(
            EXPOSURE, user, data.at(start, end), **{"$feature_flag": "checkout-v2", "$feature_flag_response": "test"}
        )
        data.add("purchase", user, end - timedelta(minutes=1))
    # Not exposures of this experiment: before the window, a response that is no variant, another flag.
    for i in range(20):
        data.add(
            EXPOSURE,
            f"early-{i}",
            start - timedelta(hours=1),
            **{"$feature_flag": "checkout-v2", "$feature_flag_response": "test"},
        )
        data.add(
            EXPOSURE,
            f"outside-{i}",
            data.at(start, end),
            **{"$feature_flag": "checkout-v2", "$feature_flag_response": False},
        )
        data.add(
            EXPOSURE,
            f"other-{i}",
            data.at(start, end),
            **{"$feature_flag": "something-else", "$feature_flag_response": "test"},
        )
    # The boolean flag: true / false responses (30% rollout), goal `signup`.
    for i in range(300):
        treated = i < 90
        user = f"bool-{i}"
        seen_at = data.at(start, end - timedelta(hours=1))
        data.add(EXPOSURE, user, seen_at, **{"$feature_flag": "new-onboarding", "$feature_flag_response": treated})
        if (treated and i % 3 == 0) or (not treated and i % 5 == 0):
            data.add("signup", user, seen_at + timedelta(seconds=30))
    _post_events(api, data.events)

    base = "/api/v1/analytics/admin/experiments/"
    checkout = admin.post(
        base,
        json={
            "name": "Checkout v2",
            "flag_key": "checkout-v2",
            "goal_event": "purchase",
            "secondary_events": ["add_to_cart"],
            "start_at": _ts(start),
            "end_at": _ts(end),
        },
    )
    assert checkout.status_code == 201, checkout.text
    onboarding = admin.post(
        base,
        json={
            "name": "Onboarding",
            "flag_key": "new-onboarding",
            "goal_event": "signup",
            "control_variant": "control",
            "start_at": _ts(start),
            "end_at": _ts(end),
        },
    )
    assert onboarding.status_code == 201, onboarding.text
    assert onboarding.json()["control_variant"] == "false"
    assert onboarding.json()["variants"] == [
        {"key": "true", "expected_percentage": 30.0},
        {"key": "false", "expected_percentage": 70.0},
    ]

    before = admin.get(f"{base}{checkout.json()['id']}/results/")
    assert before.status_code == 200 and before.json()["results"] == [] and before.json()["computed_at"] is None

    pipeline.materialize([dbt_models, experiment_results])

    cases = [
        (checkout.json()["id"], "checkout-v2", ["control", "test"], "control", "purchase", ["add_to_cart"], [0.5, 0.5]),
        (onboarding.json()["id"], "new-onboarding", ["true", "false"], "false", "signup", [], [0.3, 0.7]),
    ]
    for case in cases:
        assert_results_match(admin, data, *case)

    # The planted answer itself, so a generator bug cannot hide behind the comparison.
    checkout_rows = {r["variant"]: r for r in admin.get(f"{base}{checkout.json()['id']}/results/").json()["results"]}
    assert (checkout_rows["control"]["exposures"], checkout_rows["control"]["conversions"]) == (1000, 100)
    assert (checkout_rows["test"]["exposures"], checkout_rows["test"]["conversions"]) == (1200, 180)
    assert checkout_rows["test"]["multi_exposure_users"] == 30
    assert checkout_rows["test"]["srm_warning"] is True
    assert checkout_rows["test"]["absolute_uplift"] == pytest.approx(0.05)
    assert checkout_rows["test"]["probability_to_beat_control"] > 0.99
    onboarding_rows = {
        r["variant"]: r for r in admin.get(f"{base}{onboarding.json()['id']}/results/").json()["results"]
    }
    assert (onboarding_rows["true"]["exposures"], onboarding_rows["true"]["conversions"]) == (90, 30)
    assert (onboarding_rows["false"]["exposures"], onboarding_rows["false"]["conversions"]) == (210, 42)
    assert onboarding_rows["true"]["srm_warning"] is False

    # The example query of docs/analytics.md: the boolean flag's `true` wins (33% vs 20%, split as planned).
    winners = db.execute(
        """SELECT e.name, r.variant, r.exposures, round(r.conversion_rate::numeric, 4) AS rate,
                  round(r.relative_uplift::numeric, 3) AS uplift, r.probability_to_beat_control, r.p_value
           FROM analytics.agg_experiment_results r
           JOIN public.experiments e ON e.id = r.experiment_id
           WHERE NOT r.is_control AND NOT r.srm_warning AND r.probability_to_beat_control > 0.95
           ORDER BY e.id, r.variant"""
    ).fetchall()
    assert [(w[0], w[1], w[2]) for w in winners] == [("Onboarding", "true", 90)]

    # A second run replaces the rows (no duplicates), and a deleted experiment's rows go.
    assert admin.delete(f"{base}{onboarding.json()['id']}/").status_code == 204
    pipeline.materialize([dbt_models, experiment_results])
    (count,) = db.execute("SELECT count(*) FROM analytics.agg_experiment_results").fetchone()
    assert count == 2


def _insert(db, events: list[dict], received_at: datetime) -> None:
    """Straight into public.events (settled: received before the arrival settle delay)."""
    import uuid

    from psycopg.types.json import Jsonb

    with db.cursor() as cur:
        cur.executemany(
            'INSERT INTO events (uuid, event_type, distinct_id, properties, "timestamp", received_at) VALUES (%s, %s, %s, %s, %s, %s)',
            [
                (uuid.uuid4(), e["event_type"], e["distinct_id"], Jsonb(e["properties"]), e["timestamp"], received_at)
                for e in events
            ],
        )


def test_results_stay_exact_as_events_arrive_between_runs(admin, db, pipeline, experiments_clean):  # noqa: F811
    """The exposures model folds in only what arrived since its last run; every run must still equal
    the computation over all events received so far, including events that arrive out of order
    (an earlier exposure after a goal, a goal before its exposure, a second variant), a changed
    experiment window (recomputed whole) and a person's erasure (nothing derived from them kept)."""
    from orchestration.dbt import dbt_models
    from orchestration.experiments import experiment_results

    rng = random.Random(42)
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(days=3), now - timedelta(hours=1)
    received = now - timedelta(hours=1)
    flag = admin.post(
        "/api/v1/analytics/admin/feature-flags/",
        json={
            "key": "paywall-copy",
            "rollout_percentage": 100,
            "variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}],
        },
    )
    assert flag.status_code == 201, flag.text
    created = admin.post(
        "/api/v1/analytics/admin/experiments/",
        json={
            "name": "Paywall copy",
            "flag_key": "paywall-copy",
            "goal_event": "subscribe",
            "secondary_events": ["view_plans"],
            "start_at": _ts(start),
            "end_at": _ts(end),
        },
    )
    assert created.status_code == 201, created.text
    experiment_id = created.json()["id"]
    case = (experiment_id, "paywall-copy", ["control", "test"], "control", "subscribe", ["view_plans"], [0.5, 0.5])

    first, second = Planted(rng, start, end), Planted(rng, start, end)
    mid = start + timedelta(days=1)
    exposure = lambda variant: {"$feature_flag": "paywall-copy", "$feature_flag_response": variant}  # noqa: E731
    for i in range(300):
        user, variant = f"u-{i}", ("control", "test")[i % 2]
        wave = first if i % 3 else second
        seen_at = first.at(start, end - timedelta(hours=4))
        wave.add(EXPOSURE, user, seen_at, **exposure(variant))
        if rng.random() < (0.2 if variant == "control" else 0.35):
            (first if rng.random() < 0.5 else second).add(
                "subscribe", user, seen_at + timedelta(minutes=rng.randrange(1, 90))
            )
        if rng.random() < 0.4:
            (first if rng.random() < 0.5 else second).add("view_plans", user, seen_at + timedelta(minutes=1))
    for i in range(20):
        # An earlier exposure arrives after the goal that preceded the later one: converted only after the second run.
        first.add(EXPOSURE, f"late-first-{i}", mid + timedelta(hours=2), **exposure("test"))
        first.add("subscribe", f"late-first-{i}", mid + timedelta(hours=1))
        second.add(EXPOSURE, f"late-first-{i}", mid, **exposure("test"))
        # The goal arrives before any exposure (another device's queue): counted once the exposure arrives.
        first.add("subscribe", f"goal-first-{i}", mid + timedelta(hours=3))
        second.add(EXPOSURE, f"goal-first-{i}", mid + timedelta(hours=2), **exposure("control"))
        # A second variant arrives later: excluded and counted as multi-exposed from then on.
        first.add(EXPOSURE, f"switch-{i}", mid, **exposure("control"))
        first.add("subscribe", f"switch-{i}", mid + timedelta(minutes=5))
        second.add(EXPOSURE, f"switch-{i}", mid + timedelta(hours=1), **exposure("test"))
        # A later exposure and an earlier goal arrive after the first ones: the user stays converted.
        first.add(EXPOSURE, f"early-first-{i}", mid, **exposure("test"))
        first.add("subscribe", f"early-first-{i}", mid + timedelta(hours=1))
        second.add(EXPOSURE, f"early-first-{i}", mid + timedelta(hours=2), **exposure("test"))
        second.add("subscribe", f"early-first-{i}", mid - timedelta(hours=1))
        # A secondary event arrives a run later.
        first.add(EXPOSURE, f"cart-late-{i}", mid, **exposure("control"))
        second.add("view_plans", f"cart-late-{i}", mid + timedelta(hours=6))
    second.events += first.events[:40]  # resent: nothing may change

    def check(events: list[dict], window_end: datetime = end) -> None:
        everything = Planted(rng, start, window_end)
        everything.events = events
        assert_results_match(admin, everything, *case)

    # The table an older version built (no state columns) is replaced, not merged into.
    db.execute("CREATE SCHEMA analytics_intermediate")
    db.execute(
        "CREATE TABLE analytics_intermediate.int_experiment_exposures AS SELECT %s::bigint AS experiment_id,"
        " 'ghost'::text AS distinct_id, now() AS first_exposure_at, false AS is_multi_variant, 'test'::text AS variant,"
        " true AS converted, '{}'::text[] AS secondary_conversions",
        (experiment_id,),
    )
    _insert(db, first.events, received)
    pipeline.materialize([dbt_models, experiment_results])
    check(first.events)
    stored = "analytics_intermediate.int_experiment_exposures"
    (watermark_1,) = db.execute(f"SELECT max(_ingest_seq_watermark) FROM {stored}").fetchone()
    assert watermark_1 > 0
    late_first = db.execute(f"SELECT converted FROM {stored} WHERE distinct_id = 'late-first-0'").fetchone()
    assert late_first == (False,)

    _insert(db, second.events, received)
    pipeline.materialize([dbt_models, experiment_results])
    check(first.events + second.events)
    # Only the users with new events were rewritten (and the run marker): the rest kept the first run's rows.
    touched = {e["distinct_id"] for e in second.events}
    rewritten = {
        user
        for (user,) in db.execute(f"SELECT distinct_id FROM {stored} WHERE _ingest_seq_watermark > %s", (watermark_1,))
    }
    assert rewritten == touched | {""}
    assert db.execute(f"SELECT converted FROM {stored} WHERE distinct_id = 'late-first-0'").fetchone() == (True,)

    # A changed window recomputes the experiment from every raw event in the new window.
    shorter = mid + timedelta(hours=1, minutes=30)
    patched = admin.patch(f"/api/v1/analytics/admin/experiments/{experiment_id}/", json={"end_at": _ts(shorter)})
    assert patched.status_code == 200, patched.text
    pipeline.materialize([dbt_models, experiment_results])
    check(first.events + second.events, shorter)
    (after_window,) = db.execute(
        f"SELECT max(first_exposure_at) FROM {stored} WHERE experiment_id = %s", (experiment_id,)
    ).fetchone()
    assert after_window < shorter

    # Erasure: no row keeps the person, and the results are those without their events.
    assert (
        admin.patch(f"/api/v1/analytics/admin/experiments/{experiment_id}/", json={"end_at": _ts(end)}).status_code
        == 200
    )
    erased = "late-first-3"
    assert admin.delete(f"/api/v1/analytics/admin/persons/{erased}/").status_code == 200
    pipeline.materialize([dbt_models, experiment_results])
    assert db.execute(f"SELECT count(*) FROM {stored} WHERE distinct_id = %s", (erased,)).fetchone() == (0,)
    check([e for e in first.events + second.events if e["distinct_id"] != erased])

    # The table is unlogged: crash recovery leaves it empty, and the next run rebuilds it whole.
    assert db.execute("SELECT relpersistence FROM pg_class WHERE oid = %s::regclass", (stored,)).fetchone() == ("u",)
    db.execute(f"TRUNCATE {stored}")
    pipeline.materialize([dbt_models, experiment_results])
    check([e for e in first.events + second.events if e["distinct_id"] != erased])


def test_the_experiments_job_leaves_the_other_views_in_place(db, database_url, pipeline):  # noqa: F811
    """Replacing a view drops the views built on it: the experiments job must not rebuild the staging views."""
    from dagster import AssetSelection, materialize

    from eventtrack.settings import Settings
    from orchestration.dbt import dbt_models
    from orchestration.experiments import EXPERIMENT_DBT_MODELS, experiment_results
    from orchestration.runner import build_dbt_views

    def views() -> set[str]:
        return {
            r[0]
            for r in db.execute("SELECT schemaname || '.' || viewname FROM pg_views WHERE schemaname LIKE 'analytics%'")
        }

    build_dbt_views(Settings(database_url=database_url))
    before = views()
    assert {"analytics_staging.stg_eventtrack__events", "analytics_intermediate.int_events_sessionized"} <= before
    result = materialize(
        [dbt_models, experiment_results],
        selection=AssetSelection.assets(*EXPERIMENT_DBT_MODELS, experiment_results),
        resources=pipeline.resources,
    )
    assert result.success
    # Plus the deprecated view of the counts' old name, which the job rebuilds with the counts.
    assert views() == before | {"analytics.experiment_variant_counts"}
    assert db.execute("SELECT count(*) FROM analytics.agg_experiment_variant_counts").fetchone() == (0,)
