"""The funnel form's mapping to the admin funnel API, and how the funnel and experiment pages write numbers (pure)."""

from __future__ import annotations

from datetime import date

from ingest_api.dashboard.analysis_form import (
    duration,
    funnel_form,
    funnel_params,
    p_value,
    percent,
    points,
    saved_funnel_query,
    window_text,
)
from ingest_api.dashboard.charts import count_ticks, funnel_chart


def test_funnel_dates_are_whole_utc_days_with_the_end_day_included():
    form = funnel_form({"steps": " a,b ", "start": "2026-11-20", "end": "2026-11-24"})
    assert form == {"steps": "a,b", "window": "", "start": "2026-11-20", "end": "2026-11-24", "breakdown": ""}
    params = funnel_params(form)
    assert params["start"] == "2026-11-20T00:00:00+00:00"
    assert params["end"] == "2026-11-25T00:00:00+00:00"
    assert funnel_params(funnel_form({"steps": "a,b"}))["start"] == ""  # the API's default range


def test_a_date_that_is_not_one_goes_to_the_api_unchanged_so_its_message_is_shown():
    for raw in ("yesterday", "2026-13-01", "20261120", "9999-12-31"):
        assert funnel_params(funnel_form({"end": raw}))["end"] == raw


def test_a_saved_funnel_runs_over_its_last_days_including_today():
    saved = {"steps": ["open", "buy"], "window_seconds": 86400, "range_days": 7}
    assert saved_funnel_query(saved, date(2026, 11, 25)) == {
        "steps": "open,buy",
        "window": "1d",
        "start": "2026-11-19",
        "end": "2026-11-25",
    }


def test_window_and_duration_texts():
    assert [window_text(s) for s in (86400, 7200, 1800, 45, 90)] == ["1d", "2h", "30m", "45s", "90s"]
    assert [duration(s) for s in (None, 42.4, 900, 5400, 129600)] == ["–", "42 s", "15.0 min", "1.5 h", "1.5 d"]


def test_rates_points_and_p_values():
    assert percent(2 / 3) == "66.7 %" and percent(0.3, 2) == "30.00 %" and percent(None) == "–"
    assert points(0.3 - 0.2) == "+10.0 pp" and points(-0.05) == "-5.0 pp" and points(None) == "–"
    assert p_value(0.54321) == "0.5432" and p_value(1e-7) == "< 0.0001" and p_value(None) == "–"


def test_funnel_chart_counts_in_whole_numbers_first_step_on_top():
    assert count_ticks(0) == [0, 1] and count_ticks(3) == [0, 1, 2, 3] and count_ticks(7) == [0, 2, 4, 6, 8]
    assert count_ticks(1000) == [0, 200, 400, 600, 800, 1000]
    svg = str(funnel_chart([("1. open", 3), ("2. cart", 2), ("3. buy", 1)], title="Users per step"))
    assert "<script" not in svg and svg.index("3. buy") < svg.index("1. open")  # pygal's bottom-up order, reversed
