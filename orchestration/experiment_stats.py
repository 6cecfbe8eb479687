"""Statistics of an experiment's variants against its control (pure: numbers in, numbers out).

Definitions (docs/analytics.md, "Experiments"):
- conversion rate p = conversions / exposures;
- absolute uplift p_t - p_c; relative uplift (p_t - p_c) / p_c;
- 95% interval of the absolute uplift: Wald, unpooled variances,
  (p_t - p_c) ± z_0.975 * sqrt(p_t(1-p_t)/n_t + p_c(1-p_c)/n_c);
- p-value: two-sided two-proportion z-test with the pooled proportion (the same
  as R's `prop.test(..., correct = FALSE)` and a 2x2 chi-square without Yates);
- probability to beat control: P(p_t > p_c) with p ~ Beta(1 + conversions,
  1 + exposures - conversions) (Beta(1,1) prior), computed exactly by the
  closed-form sum for integer parameters (no sampling);
- sample-ratio mismatch: chi-square goodness of fit of the exposures against the
  expected split; `srm_warning` when its p-value is below 0.001.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

SRM_ALPHA = 0.001
Z_975 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class Comparison:
    absolute_uplift: float | None
    relative_uplift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    probability_to_beat_control: float | None


def rate(conversions: int, exposures: int) -> float | None:
    return conversions / exposures if exposures else None


def z_test_p_value(x_c: int, n_c: int, x_t: int, n_t: int) -> float | None:
    """Two-sided pooled two-proportion z-test; None when undefined (no exposures, or 0% / 100% everywhere)."""
    if n_c == 0 or n_t == 0:
        return None
    pooled = (x_c + x_t) / (n_c + n_t)
    variance = pooled * (1 - pooled) * (1 / n_c + 1 / n_t)
    if variance <= 0:
        return None
    z = (x_t / n_t - x_c / n_c) / math.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def uplift_interval(x_c: int, n_c: int, x_t: int, n_t: int, z: float = Z_975) -> tuple[float, float] | None:
    """Wald interval of p_t - p_c with unpooled variances."""
    if n_c == 0 or n_t == 0:
        return None
    p_c, p_t = x_c / n_c, x_t / n_t
    half = z * math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    return (p_t - p_c - half, p_t - p_c + half)


def probability_b_beats_a(a_alpha: int, a_beta: int, b_alpha: int, b_beta: int) -> float:
    """P(X_b > X_a) for independent X ~ Beta(alpha, beta) with integer parameters, exactly.

    P = sum_{i=0}^{b_alpha-1} B(a_alpha+i, a_beta+b_beta) / ((b_beta+i) B(1+i, b_beta) B(a_alpha, a_beta)),
    summed in log space; the shorter of the two symmetric sums is used
    (P(b > a) = 1 - P(a > b), ties having probability 0).
    """
    if b_alpha > a_alpha:
        return 1.0 - probability_b_beats_a(b_alpha, b_beta, a_alpha, a_beta)
    i = np.arange(b_alpha, dtype=np.float64)
    log_terms = (
        special.betaln(a_alpha + i, a_beta + b_beta)
        - np.log(b_beta + i)
        - special.betaln(1 + i, b_beta)
        - special.betaln(a_alpha, a_beta)
    )
    return float(min(1.0, max(0.0, np.exp(special.logsumexp(log_terms)))))


def probability_to_beat_control(x_c: int, n_c: int, x_t: int, n_t: int) -> float:
    """P(p_t > p_c) under Beta(1,1) priors."""
    return probability_b_beats_a(1 + x_c, 1 + n_c - x_c, 1 + x_t, 1 + n_t - x_t)


def compare(x_c: int, n_c: int, x_t: int, n_t: int) -> Comparison:
    """A treatment (x_t conversions of n_t) against the control (x_c of n_c)."""
    p_c, p_t = rate(x_c, n_c), rate(x_t, n_t)
    absolute = None if p_c is None or p_t is None else p_t - p_c
    relative = None if absolute is None or not p_c else absolute / p_c
    interval = uplift_interval(x_c, n_c, x_t, n_t)
    return Comparison(
        absolute_uplift=absolute,
        relative_uplift=relative,
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        p_value=z_test_p_value(x_c, n_c, x_t, n_t),
        probability_to_beat_control=probability_to_beat_control(x_c, n_c, x_t, n_t),
    )


def srm_p_value(observed: Sequence[int], expected_shares: Sequence[float]) -> float | None:
    """Chi-square goodness-of-fit p-value of the exposures per variant against the expected shares.

    Variants expected to get nobody are left out of the test, unless someone was
    exposed to one: then the split is certainly wrong (p = 0). None without exposures.
    """
    total = sum(observed)
    if total == 0:
        return None
    if any(o > 0 and s <= 0 for o, s in zip(observed, expected_shares)):
        return 0.0
    kept = [(o, s) for o, s in zip(observed, expected_shares) if s > 0]
    if len(kept) < 2:
        return None
    share_sum = sum(s for _, s in kept)
    obs = np.array([o for o, _ in kept], dtype=np.float64)
    exp = np.array([total * s / share_sum for _, s in kept])
    return float(stats.chisquare(obs, exp).pvalue)
