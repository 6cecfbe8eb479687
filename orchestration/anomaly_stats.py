"""Volume anomalies of one event type: each hour against the same hour of the week before (pure).

Definitions (docs/analytics.md, "Volume anomalies"):
- history of hour h: the counts at h - 1 week, ..., h - BASELINE_WEEKS weeks that fall on or after the
  type's history start (hours without a row count 0); fewer than MIN_HISTORY_WEEKS: no verdict (cold start);
- expected = median of the history; below the minimum volume: not judged;
- wobble = the median, over the POOLED_HOURS hours of the week around h, of each hour's MAD / median
  across its own history (MAD: median absolute deviation from the median), made a standard deviation
  (x 1.4826, x SMALL_SAMPLE); pooled because a MAD of 3-4 values alone is too unsteady;
- spread = max(sqrt(expected), max(wobble, RELATIVE_FLOOR) * expected) * sqrt(1 + pi / (2n)) for n weeks
  of history (Poisson noise at least; the last factor: the median of n values has noise of its own);
- score = (actual - expected) / spread; an anomaly when |score| >= threshold, a `drop` or a `spike`;
- severity from the ratio actual / expected (the score says how sure, the ratio how big):
  high at <= 1/3 or >= 3x, medium at <= 1/2 or >= 2x, low otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

BASELINE_WEEKS = 4
MIN_HISTORY_WEEKS = 3
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution is 0.6745 sigma
# ... but the MAD of a few values is smaller: the median of 1.4826 * MAD over n normal values is 0.538 sigma
# for n = 3 and 0.672 sigma for n = 4 (simulated, 200,000 draws); each hour's ratio is scaled back by this.
SMALL_SAMPLE = {3: 1 / 0.538, 4: 1 / 0.672}
RELATIVE_FLOOR = 0.05
POOLED_HOURS = 168  # a week of hours, centred on the judged one: every hour of the day and day of the week
WEEK = timedelta(weeks=1)
# (ratio at or below, ratio at or above, severity), checked in order
SEVERITIES = ((1 / 3, 3.0, "high"), (1 / 2, 2.0, "medium"))


@dataclass(frozen=True)
class HourVerdict:
    """One judged hour of one event type: a row of analytics.agg_event_volume_anomalies."""

    hour: datetime
    actual: int
    expected: float
    lower_bound: float  # the band: expected -/+ threshold * spread (never below 0)
    upper_bound: float
    score: float
    ratio: float  # actual / expected
    direction: str | None  # "drop" or "spike" for an anomaly, else None
    severity: str | None  # "low", "medium" or "high" for an anomaly, else None
    history_weeks: int


def severity(ratio: float) -> str:
    for low, high, name in SEVERITIES:
        if ratio <= low or ratio >= high:
            return name
    return "low"


def history(counts: Mapping[datetime, int], hour: datetime, history_start: datetime) -> list[int]:
    """The counts of the same hour of the week before, up to BASELINE_WEEKS weeks back, from `history_start` on."""
    return [counts.get(hour - k * WEEK, 0) for k in range(1, BASELINE_WEEKS + 1) if hour - k * WEEK >= history_start]


def slot_wobble(counts: Mapping[datetime, int], slot: datetime, history_start: datetime) -> float | None:
    """One hour's MAD / median across its history, scaled by SMALL_SAMPLE; None without enough history or events."""
    values = np.asarray(history(counts, slot, history_start))
    if len(values) < MIN_HISTORY_WEEKS or (median := np.median(values)) <= 0:
        return None
    return float(SMALL_SAMPLE[len(values)] * np.median(np.abs(values - median)) / median)


def relative_dispersion(
    counts: Mapping[datetime, int], hour: datetime, history_start: datetime, known: dict[datetime, float | None]
) -> float:
    """The type's week-to-week wobble around `hour`: the median, over the POOLED_HOURS hours of the week
    around it, of each one's `slot_wobble` (a MAD of 3-4 values alone is too unsteady). `known`: the
    slots' wobbles computed so far (consecutive hours share most of their slots)."""
    ratios = []
    for offset in range(-(POOLED_HOURS // 2), POOLED_HOURS - POOLED_HOURS // 2):
        slot = hour + timedelta(hours=offset)
        if slot not in known:
            known[slot] = slot_wobble(counts, slot, history_start)
        if known[slot] is not None:
            ratios.append(known[slot])
    return float(np.median(ratios)) if ratios else 0.0


def judge_hours(
    counts: Mapping[datetime, int],
    hours: Iterable[datetime],
    history_start: datetime,
    *,
    threshold: float,
    min_expected: float,
) -> list[HourVerdict]:
    """The verdicts on `hours` (complete UTC hours) of one event type, given its hourly `counts` (hours without
    an entry count 0) known from `history_start` on; hours in cold start or below `min_expected` have none.
    `counts` must cover BASELINE_WEEKS weeks and POOLED_HOURS / 2 hours before the first of `hours`."""
    verdicts, known = [], {}
    for hour in hours:
        past = history(counts, hour, history_start)
        if len(past) < MIN_HISTORY_WEEKS:
            continue
        expected = float(np.median(past))
        if expected < min_expected:
            continue
        wobble = MAD_TO_SIGMA * relative_dispersion(counts, hour, history_start, known)
        noise = max(math.sqrt(expected), max(wobble, RELATIVE_FLOOR) * expected)
        # actual - median: the hour's own noise plus the median's (variance pi/2 * sigma^2 / n for n values)
        spread = noise * math.sqrt(1 + math.pi / (2 * len(past)))
        actual = counts.get(hour, 0)
        score = (actual - expected) / spread
        ratio = actual / expected
        flagged = abs(score) >= threshold
        verdicts.append(
            HourVerdict(
                hour=hour,
                actual=actual,
                expected=expected,
                lower_bound=max(0.0, expected - threshold * spread),
                upper_bound=expected + threshold * spread,
                score=score,
                ratio=ratio,
                direction=("drop" if score < 0 else "spike") if flagged else None,
                severity=severity(ratio) if flagged else None,
                history_weeks=len(past),
            )
        )
    return verdicts
