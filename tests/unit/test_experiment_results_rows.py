"""The pure half of the experiment_results asset: counts rows -> result rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestration.experiments import results_rows

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def counts(variant, order, exposures, conversions, *, control=False, pct=50.0, experiment=1, multi=0, secondary=None):
    return {
        "experiment_id": experiment, "variant": variant, "variant_order": order, "is_control": control,
        "expected_percentage": pct, "exposures": exposures, "conversions": conversions,
        "multi_exposure_users": multi, "secondary_conversions": secondary or {},
    }  # fmt: skip


def test_each_variant_is_compared_with_its_control_and_the_control_row_has_no_comparison():
    rows = results_rows(
        [
            counts("b", 2, 1000, 130, secondary={"cart": 500}),
            counts("a", 1, 1000, 100, control=True, multi=4, secondary={"cart": 400}),
        ],
        NOW,
    )
    assert [r["variant"] for r in rows] == ["a", "b"]  # the flag's order
    control, treatment = rows
    assert (
        control["absolute_uplift"] is None
        and control["p_value"] is None
        and control["probability_to_beat_control"] is None
    )
    assert treatment["absolute_uplift"] == pytest.approx(0.03)
    assert treatment["relative_uplift"] == pytest.approx(0.3)
    assert treatment["p_value"] == pytest.approx(0.035488, abs=1e-6)
    assert treatment["secondary_metrics"] == {"cart": {"conversions": 500, "conversion_rate": 0.5}}
    assert control["multi_exposure_users"] == 4  # as the dbt model gave it
    assert {r["srm_p_value"] for r in rows} == {1.0} and not any(r["srm_warning"] for r in rows)
    assert all(r["computed_at"] == NOW for r in rows)


def test_a_planted_sample_ratio_mismatch_is_flagged_on_every_row_of_the_experiment():
    rows = results_rows(
        [
            counts("control", 1, 4500, 450, control=True),
            counts("test", 2, 5500, 550),
            counts("other", 1, 500, 50, control=True, experiment=2, pct=30),
            counts("x", 2, 1150, 120, experiment=2, pct=70),
        ],
        NOW,
    )
    first = [r for r in rows if r["experiment_id"] == 1]
    second = [r for r in rows if r["experiment_id"] == 2]
    assert all(r["srm_warning"] for r in first) and first[0]["srm_p_value"] < 1e-20
    assert not any(r["srm_warning"] for r in second)
    assert [r["expected_share"] for r in second] == pytest.approx([0.3, 0.7])


def test_no_exposures_leaves_the_rates_and_statistics_empty():
    rows = results_rows([counts("control", 1, 0, 0, control=True), counts("test", 2, 0, 0)], NOW)
    assert all(r["conversion_rate"] is None and r["srm_p_value"] is None and not r["srm_warning"] for r in rows)
    assert rows[1]["p_value"] is None and rows[1]["probability_to_beat_control"] == pytest.approx(0.5)
