"""The docs test's checks on analytics examples (tests/docs_examples.py): which requests they look at, what counts as empty."""

from pathlib import Path

from tests.docs_examples import (
    Example,
    curl_read,
    empty_answer,
    reads_demo_data,
    zero_counts,
)

FUNNELS = "http://localhost:8000/api/v1/analytics/admin/funnels/?steps=app_open,view_item"


def sh(code: str) -> Example:
    return Example(path=Path("doc.md"), line=1, language="sh", code=code)


def test_only_gets_of_analytics_reads_are_checked():
    assert curl_read(["-s", "-H", "Authorization: Bearer k", FUNNELS]) == FUNNELS
    counts = "http://localhost:8000/api/v1/analytics/admin/events/event_counts/"
    assert curl_read(["-s", "-G", counts, "--data-urlencode", "filter=properties.amount>=10"]) == counts
    saved = "http://localhost:8000/api/v1/analytics/admin/funnels/saved/"
    assert curl_read(["-s", "-X", "POST", "-d", "{}", saved]) is None
    assert curl_read(["-s", "-d", "{}", saved]) is None  # -d without -G is a POST
    assert curl_read(["-s", "http://localhost:8000/api/v1/analytics/admin/feature-flags/"]) is None


def test_examples_that_read_the_data():
    assert reads_demo_data(Example(path=Path("d.md"), line=1, language="sql", code="SELECT 1"))
    assert reads_demo_data(sh(".venv/bin/eventtrack psql -c 'select * from analytics.fct_sessions'"))
    assert reads_demo_data(sh(f"curl -s '{FUNNELS}'"))
    assert not reads_demo_data(sh("curl -s -X POST http://localhost:8000/api/v1/analytics/capture/ -d '{}'"))


def test_a_funnel_step_nobody_reached_is_an_empty_answer():
    steps = [{"step": 1, "event_type": "app_open", "users": 9}, {"step": 2, "event_type": "view_item", "users": 0}]
    assert "users = 0" in empty_answer({"results": steps})
    assert empty_answer({"results": [steps[0]]}) is None
    assert empty_answer({"results": []}) and empty_answer({"results": None}) and empty_answer("<html>")
    assert empty_answer({"cohorts": [{"cohort": "2026-11-23", "users": 4, "retained": [4, 0]}]}) is None
    assert empty_answer({"total": 0, "results": []})


def test_sql_rows_with_a_zero_count_show_nothing():
    assert zero_counts(["step", "event_type", "users"], [(1, "app_open", 9), (2, "view_item", 0)])
    assert zero_counts(["day", "events"], []) == "no rows"
    assert zero_counts(["step", "users", "median_seconds"], [(1, 9, 0)]) is None  # only counting columns
