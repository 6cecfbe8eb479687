"""Volume anomalies' statistics (orchestration/anomaly_stats.py) on synthetic seasonal series."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from eventtrack.settings import Settings
from orchestration.anomaly_stats import judge_hours, severity

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
DEFAULTS = {"threshold": Settings().anomaly_threshold, "min_expected": Settings().anomaly_min_expected_events}


def seasonal_series(seed: int, weeks: int, base: float = 200) -> dict[datetime, int]:
    """Hourly counts with a daily cycle (x0.2 at night to x1.8 in the afternoon), quieter weekends,
    Poisson noise and 5% day-to-day wobble: what a steady app sends."""
    rng = np.random.default_rng(seed)
    counts = {}
    for i in range(weeks * 168):
        hour = START + timedelta(hours=i)
        rate = base * (1 + 0.8 * math.sin(2 * math.pi * (hour.hour - 6) / 24)) * (0.7 if hour.weekday() >= 5 else 1)
        counts[hour] = int(rng.poisson(rate * rng.lognormal(0, 0.05)))
    return counts


def last_week(weeks: int) -> list[datetime]:
    return [START + timedelta(hours=i) for i in range((weeks - 1) * 168, weeks * 168)]


@pytest.mark.parametrize("seed", range(5))
def test_a_clean_four_week_seasonal_series_has_no_anomaly_at_the_default_threshold(seed):
    counts = seasonal_series(seed, weeks=4)
    verdicts = judge_hours(counts, last_week(4), START, **DEFAULTS)
    assert len(verdicts) > 140  # judged: only the quietest night hours fall under the minimum volume
    assert [v for v in verdicts if v.severity] == []


def test_a_planted_five_fold_drop_for_three_hours_is_flagged_as_a_high_drop():
    counts = seasonal_series(1, weeks=5)
    dropped = [START + timedelta(weeks=4, days=2, hours=h) for h in (13, 14, 15)]  # Wednesday afternoon
    for hour in dropped:
        counts[hour] //= 5
    verdicts = judge_hours(counts, last_week(5), START, **DEFAULTS)
    flagged = [v for v in verdicts if v.severity]
    assert [v.hour for v in flagged] == dropped
    for v in flagged:
        assert (v.direction, v.severity, v.history_weeks) == ("drop", "high", 4)
        assert v.score <= -DEFAULTS["threshold"] and v.actual < v.lower_bound
        assert v.ratio == pytest.approx(0.2, abs=0.05)


def test_a_spike_is_flagged_with_its_severity_from_the_ratio():
    counts = seasonal_series(2, weeks=4)
    hour = START + timedelta(weeks=3, days=1, hours=12)
    counts[hour] = int(counts[hour] * 2.5)
    (flagged,) = [v for v in judge_hours(counts, last_week(4), START, **DEFAULTS) if v.severity]
    assert (flagged.hour, flagged.direction, flagged.severity) == (hour, "spike", "medium")
    assert flagged.actual > flagged.upper_bound


def test_cold_start_gives_no_verdict_until_three_weeks_of_history():
    counts = seasonal_series(3, weeks=4)
    week_four = last_week(4)
    # The type's history starts one week in: two weeks of history, no verdict even for a total outage.
    for hour in week_four:
        counts[hour] = 0
    assert judge_hours(counts, week_four, START + timedelta(weeks=1), **DEFAULTS) == []
    # From its real start, three weeks: the outage's busy hours are drops (a few quiet night hours are in the band).
    verdicts = judge_hours(counts, week_four, START, **DEFAULTS)
    flagged = [v for v in verdicts if v.severity]
    assert len(flagged) > 120 and all(v.expected < 50 for v in verdicts if not v.severity)
    assert {(v.direction, v.severity, v.history_weeks) for v in flagged} == {("drop", "high", 3)}


def test_hours_expected_below_the_minimum_volume_are_not_judged():
    quiet = {hour: n // 20 for hour, n in seasonal_series(4, weeks=4).items()}  # ~10 events an hour
    for hour in last_week(4):
        quiet[hour] = 0
    assert judge_hours(quiet, last_week(4), START, **DEFAULTS) == []


def test_the_median_ignores_last_weeks_outage():
    counts = seasonal_series(5, weeks=5)
    hour = START + timedelta(weeks=4, days=3, hours=14)
    counts[hour - timedelta(weeks=1)] = 0  # an outage the week before, same hour
    (verdict,) = judge_hours(counts, [hour], START, **DEFAULTS)
    assert verdict.severity is None and verdict.expected > 200


@pytest.mark.parametrize(
    "ratio, expected",
    [(0.0, "high"), (1 / 3, "high"), (0.5, "medium"), (0.7, "low"), (1.5, "low"), (2.0, "medium"), (3.0, "high")],
)
def test_severity_is_graded_by_the_ratio(ratio, expected):
    assert severity(ratio) == expected
