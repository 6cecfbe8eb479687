from datetime import timedelta
from decimal import Decimal

import pytest

from eventtrack.analytics.funnels import FunnelParamError, StepRow, parse_steps, parse_window, step_results
from eventtrack.analytics.segments import (
    PropertyFilter,
    SegmentError,
    filters_sql,
    parse_breakdown,
    parse_filter,
    text_expr,
)


def test_filter_syntax_parses_text_and_numeric_comparisons():
    assert parse_filter("properties.plan=pro") == PropertyFilter("plan", "=", "pro")
    assert parse_filter("properties.plan!=") == PropertyFilter("plan", "!=", "")
    assert parse_filter("properties.price>=10.5") == PropertyFilter("price", ">=", Decimal("10.5"))
    assert parse_filter("properties.$os<3") == PropertyFilter("$os", "<", Decimal(3))
    assert parse_filter("properties.a=b=c") == PropertyFilter("a", "=", "b=c")  # the first operator splits


@pytest.mark.parametrize(
    "raw",
    [
        "plan=pro",
        "properties.=x",
        "properties.pl'an=x",
        "properties.p>=abc",
        "properties.p<Infinity",
        "properties.p",
        "properties.p>1e999999",
    ],
)
def test_filter_syntax_refuses_what_it_cannot_render_safely(raw):
    with pytest.raises(SegmentError) as err:
        parse_filter(raw)
    assert "filter" in err.value.fields


def test_filters_render_values_as_bind_parameters_and_keys_as_checked_literals():
    sql, params = filters_sql([PropertyFilter("plan", "=", "x' OR 1=1"), PropertyFilter("price", ">", Decimal(3))])
    assert "x' OR" not in sql and params == {"pf0": "x' OR 1=1", "pf1": Decimal(3)}
    assert "(e.properties ->> 'plan') = :pf0" in sql
    with pytest.raises(SegmentError):
        text_expr("a'b")


def test_breakdown_is_a_known_column_or_a_property():
    assert parse_breakdown("os_name") == "e.os_name"
    assert parse_breakdown("properties.plan") == "(e.properties ->> 'plan')"
    assert parse_breakdown(None) is None
    for bad in ("distinct_id", "properties.", "properties.a b"):
        with pytest.raises(SegmentError):
            parse_breakdown(bad)


def test_funnel_steps_and_window():
    assert parse_steps("a, b,a") == ["a", "b", "a"]
    assert parse_window(None) == timedelta(hours=24)
    assert parse_window("90d") == timedelta(days=90)
    assert parse_window("45m") == timedelta(minutes=45)
    for bad in ("91d", "0s", "1.5h", "h", "-1h"):
        with pytest.raises(FunnelParamError):
            parse_window(bad)


def test_names_are_matched_whole_so_a_final_newline_is_refused():
    # `^...$` with match() let "a\n" through: `$` also matches before a final newline.
    from eventtrack.analytics.segments import valid_key
    from ingest_api.promote import promote_property

    assert valid_key("a") and not valid_key("a\n") and not valid_key("\na")
    for raw in ("properties.a\n=x", "properties.a\n>1"):
        with pytest.raises(SegmentError):
            parse_filter(raw)
    assert parse_filter("properties.a=x\n") == PropertyFilter("a", "=", "x\n")  # a value is data, bound as a parameter
    with pytest.raises(SegmentError):
        parse_breakdown("properties.a\n")
    with pytest.raises(FunnelParamError):
        parse_window("24h\n")
    with pytest.raises(ValueError, match="property key"):  # refused before any connection is made
        promote_property("postgresql://nowhere.invalid/none", "a\n")


def test_conversions_from_previous_and_first_step():
    out = step_results(["a", "b", "c"], [StepRow(1, 8, None), StepRow(2, 4, 30.0)])
    assert [(r["users"], r["conversion_from_previous"], r["conversion_from_first"]) for r in out] == [
        (8, 1.0, 1.0),
        (4, 0.5, 0.5),
        (0, 0.0, 0.0),
    ]
    empty = step_results(["a", "b"], [StepRow(1, 0, None)])
    assert [(r["conversion_from_previous"], r["conversion_from_first"]) for r in empty] == [(None, None), (None, None)]


def test_saved_funnel_definitions_are_validated_field_by_field():
    from eventtrack.analytics.funnels import parse_saved_funnel

    assert parse_saved_funnel({"name": " checkout ", "steps": ["a", "b"], "window": "2h"}) == {
        "name": "checkout", "steps": ["a", "b"], "window_seconds": 7200, "range_days": 30,
    }  # fmt: skip
    with pytest.raises(FunnelParamError) as err:
        parse_saved_funnel({"name": 3, "steps": ["a,b", "c"], "window": 5, "range_days": True, "extra": 1})
    assert set(err.value.fields) == {"name", "steps", "window", "range_days", "extra"}


def test_cohort_triangle_orders_periods_and_computes_rates():
    from datetime import date

    from ingest_api.admin.analytics import cohort_triangle

    rows = [(date(2026, 1, 5), 4, 1, 1, None), (date(2026, 1, 5), 4, 0, 4, None), (date(2026, 1, 12), 0, 0, 0, None)]
    assert cohort_triangle(rows) == [
        {"cohort": "2026-01-05", "users": 4, "retained": [4, 1], "rates": [1.0, 0.25]},
        {"cohort": "2026-01-12", "users": 0, "retained": [0], "rates": [None]},
    ]


def test_a_saved_funnel_covers_its_last_whole_utc_days_before_the_run():
    from datetime import UTC, datetime, timedelta, timezone

    from eventtrack.analytics.funnels import saved_funnel_range

    # 01:30 on Dec 3 in UTC+3 is 22:30 on Dec 2 UTC: the range ends at midnight UTC of Dec 2.
    as_of = datetime(2026, 12, 3, 1, 30, tzinfo=timezone(timedelta(hours=3)))
    assert saved_funnel_range(as_of, 2) == (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
    assert saved_funnel_range(datetime(2026, 12, 2, tzinfo=UTC), 1) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
    )


def test_a_saved_funnels_rows_are_the_endpoints_results_with_the_funnel_and_its_range():
    from datetime import UTC, datetime, timedelta

    from eventtrack.analytics.funnels import SavedFunnel, saved_funnel_query, saved_funnel_rows, step_results

    funnel = SavedFunnel(7, "checkout", ["open", "view", "buy"], 3600, 3)
    as_of = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    sql, params = saved_funnel_query(funnel, as_of)
    start, end = datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    assert params == {
        "s1": "open", "s2": "view", "s3": "buy",
        "start": start, "end": end, "end_w": end + timedelta(hours=1), "window": timedelta(hours=1),
    }  # fmt: skip
    assert "GROUPING" not in sql and sql.count("LATERAL") == 2  # no breakdown, one probe per later step
    # (is_total, breakdown value, step, users, median seconds), as funnel_sql answers
    rows = saved_funnel_rows(
        funnel, as_of, [(True, None, 1, 4, None), (True, None, 2, 3, 60.0), (True, None, 3, 0, None)]
    )
    endpoint = step_results(funnel.steps, [StepRow(1, 4, None), StepRow(2, 3, 60.0), StepRow(3, 0, None)])
    fixed = {"funnel_id": 7, "funnel_name": "checkout", "range_start": start, "range_end": end, "window_seconds": 3600}
    assert rows == [{**fixed, **r} for r in endpoint]
    assert [(r["conversion_from_previous"], r["conversion_from_first"]) for r in rows] == [
        (1.0, 1.0),
        (0.75, 0.75),
        (0.0, 0.0),
    ]
    # Nobody entered: no conversion at all, step 1 included.
    empty = saved_funnel_rows(funnel, as_of, [(True, None, k, 0, None) for k in (1, 2, 3)])
    assert {(r["conversion_from_previous"], r["conversion_from_first"]) for r in empty} == {(None, None)}
