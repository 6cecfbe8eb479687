"""The experiment statistics against values computed another way: closed forms, textbook formulas,
scipy's contingency test, numerical integration and a seeded Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from orchestration.experiment_stats import (
    compare,
    probability_b_beats_a,
    probability_to_beat_control,
    srm_p_value,
    uplift_interval,
    z_test_p_value,
)


def test_z_test_matches_the_textbook_formula_and_the_uncorrected_chi_square():
    # 100/1000 vs 130/1000: pooled 0.115, z = 0.03 / sqrt(0.115 * 0.885 * 2/1000) = 2.1027...
    z = 0.03 / math.sqrt(0.115 * 0.885 * 2 / 1000)
    assert z == pytest.approx(2.10274, abs=1e-5)
    expected = math.erfc(z / math.sqrt(2))  # two-sided normal tail
    assert z_test_p_value(100, 1000, 130, 1000) == pytest.approx(expected, rel=1e-12)
    # R: prop.test(c(100, 130), c(1000, 1000), correct = FALSE) is this 2x2 chi-square.
    chi2 = stats.chi2_contingency([[100, 900], [130, 870]], correction=False)
    assert z_test_p_value(100, 1000, 130, 1000) == pytest.approx(chi2.pvalue, rel=1e-9)
    assert z_test_p_value(100, 1000, 130, 1000) == pytest.approx(0.035490, abs=5e-6)


def test_z_test_is_undefined_without_exposures_or_variance():
    assert z_test_p_value(0, 0, 5, 10) is None
    assert z_test_p_value(0, 10, 0, 10) is None
    assert z_test_p_value(10, 10, 10, 10) is None


def test_uplift_interval_is_the_unpooled_wald_interval():
    low, high = uplift_interval(100, 1000, 130, 1000)
    half = 1.959963985 * math.sqrt(0.1 * 0.9 / 1000 + 0.13 * 0.87 / 1000)
    assert low == pytest.approx(0.03 - half, abs=1e-9)
    assert high == pytest.approx(0.03 + half, abs=1e-9)
    assert (low, high) == pytest.approx((0.002068, 0.057932), abs=1e-6)


@pytest.mark.parametrize(("a", "c"), [(1, 1), (2, 1), (5, 3), (3, 5), (40, 7)])
def test_probability_matches_the_closed_form_for_beta_a_1_against_beta_c_1(a, c):
    # X ~ Beta(a, 1) has CDF x^a, so P(X > Y) for Y ~ Beta(c, 1) is a / (a + c).
    assert probability_b_beats_a(c, 1, a, 1) == pytest.approx(a / (a + c), abs=1e-12)


def test_probability_matches_numerical_integration():
    a_alpha, a_beta, b_alpha, b_beta = 31, 271, 45, 260
    a, b = stats.beta(a_alpha, a_beta), stats.beta(b_alpha, b_beta)
    # P(B > A) = integral of f_A(x) (1 - F_B(x)) dx
    numeric, _ = integrate.quad(lambda x: a.pdf(x) * b.sf(x), 0, 1, points=[a.mean(), b.mean()], limit=200)
    assert probability_b_beats_a(a_alpha, a_beta, b_alpha, b_beta) == pytest.approx(numeric, abs=1e-9)


def test_probability_matches_a_seeded_monte_carlo_for_large_counts():
    rng = np.random.default_rng(7)
    n = 2_000_000
    control = rng.beta(1 + 5_000, 1 + 100_000 - 5_000, n)
    treatment = rng.beta(1 + 5_150, 1 + 100_000 - 5_150, n)
    monte_carlo = float(np.mean(treatment > control))
    exact = probability_to_beat_control(5_000, 100_000, 5_150, 100_000)
    assert exact == pytest.approx(monte_carlo, abs=0.002)
    assert 0.9 < exact < 0.95  # a 3% relative uplift on 100k users each: likely, not certain


def test_probability_is_symmetric_and_half_for_identical_data():
    assert probability_to_beat_control(50, 1000, 50, 1000) == pytest.approx(0.5, abs=1e-12)
    p = probability_to_beat_control(50, 1000, 70, 1000)
    assert probability_to_beat_control(70, 1000, 50, 1000) == pytest.approx(1 - p, abs=1e-12)


def test_srm_p_value_is_the_chi_square_goodness_of_fit():
    # 5000 vs 5200 against 50/50: chi2 = 2 * 100^2 / 5100; with 1 df, p = erfc(sqrt(chi2 / 2)).
    chi2 = 2 * 100**2 / 5100
    assert srm_p_value([5000, 5200], [50, 50]) == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), rel=1e-9)
    # Three arms 20/40/40 observed exactly: no mismatch.
    assert srm_p_value([200, 400, 400], [20, 40, 40]) == pytest.approx(1.0)
    # A planted 45/55 split on 20 000 users is flagged.
    assert srm_p_value([9000, 11000], [50, 50]) < 0.001


def test_srm_handles_zero_share_variants_and_no_exposures():
    assert srm_p_value([0, 0], [50, 50]) is None
    assert srm_p_value([10, 12, 0], [50, 50, 0]) == pytest.approx(srm_p_value([10, 12], [50, 50]))
    assert srm_p_value([10, 12, 3], [50, 50, 0]) == 0.0


def test_compare_combines_everything_and_leaves_undefined_values_empty():
    result = compare(100, 1000, 130, 1000)
    assert result.absolute_uplift == pytest.approx(0.03)
    assert result.relative_uplift == pytest.approx(0.3)
    assert result.ci_low < 0.03 < result.ci_high
    assert result.p_value == pytest.approx(0.035490, abs=5e-6)
    assert 0.95 < result.probability_to_beat_control < 1
    empty = compare(0, 0, 3, 10)
    assert empty.absolute_uplift is None and empty.relative_uplift is None and empty.p_value is None
    assert compare(0, 10, 3, 10).relative_uplift is None  # control at 0%: no relative uplift
