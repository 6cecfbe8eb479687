"""Retention marts and saved funnel results, built by dbt through Dagster, read over the admin API.

Cohorts are planted (sizes and returns set by construction) and the whole
triangle is also recomputed in Python; saved funnel results are compared with
the Python reference of the funnel definition and with the live endpoint.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from eventtrack.settings import Settings
from tests.integration.test_funnels_and_segments_api import STEPS, ev, insert, random_rows, reference_funnel
from tests.integration.test_pipeline import Pipeline

RETENTION = "/api/v1/analytics/admin/retention/"
SAVED = "/api/v1/analytics/admin/funnels/saved/"
FUNNEL = "/api/v1/analytics/admin/funnels/"


def monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def at(d: date, hour: int = 12) -> datetime:
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC)


def planted_cohorts(today: date) -> tuple[list[dict], date, date]:
    """Cohort A: 10 users first seen in week w0 (6 come back in w0+1, 3 of them buy in w0+3);
    cohort B: 4 users first seen in w0+2 (2 come back in w0+3 with a purchase)."""
    w0 = monday(today) - timedelta(weeks=5)
    rows = []
    for i in range(10):
        rows.append(ev(f"a{i}", "app_open", at(w0 + timedelta(days=i % 5))))
        if i < 6:
            rows.append(ev(f"a{i}", "view_item", at(w0 + timedelta(days=7 + i % 3))))
        if i < 3:
            rows.append(ev(f"a{i}", "purchase", at(w0 + timedelta(days=21))))
    w2 = w0 + timedelta(weeks=2)
    for i in range(4):
        rows.append(ev(f"b{i}", "app_open", at(w2 + timedelta(days=6), 23)))  # Sunday 23:00 UTC: still week w2
        if i < 2:
            rows.append(ev(f"b{i}", "purchase", at(w2 + timedelta(days=7), 0)))  # Monday 00:00: week w2+1
    return rows, w0, w2


def expected_triangle(
    rows: list[dict], period_days: int, return_event: str | None
) -> dict[date, tuple[int, list[int]]]:
    def period(ts: datetime) -> date:
        d = ts.astimezone(UTC).date()
        return monday(d) if period_days == 7 else d

    first = {}
    for r in sorted(rows, key=lambda r: r["ts"]):
        first.setdefault(r["user"], period(r["ts"]))
    last = max(period(r["ts"]) for r in rows)
    active = defaultdict(set)
    for r in rows:
        if return_event is None or r["type"] == return_event:
            active[r["user"]].add(period(r["ts"]))
    out = {}
    for cohort in sorted(set(first.values())):
        users = [u for u, c in first.items() if c == cohort]
        n_periods = (last - cohort).days // period_days + 1
        retained = [
            sum(1 for u in users if cohort + timedelta(days=n * period_days) in active[u]) for n in range(n_periods)
        ]
        out[cohort] = (len(users), retained)
    return out


def api_triangle(admin, period: str) -> tuple[dict[date, tuple[int, list[int]]], str | None]:
    body = admin.get(RETENTION, params={"period": period}).json()
    for c in body["cohorts"]:
        assert c["rates"] == [round(n / c["users"], 6) for n in c["retained"]]
    return {date.fromisoformat(c["cohort"]): (c["users"], c["retained"]) for c in body["cohorts"]}, body["return_event"]


def test_retention_triangles_match_the_planted_cohorts(pipeline, db, admin, database_url):
    from orchestration.dbt import dbt_models

    today = datetime.now(UTC).date()
    rows, w0, w2 = planted_cohorts(today)
    rows += random_rows(random.Random(2), at(today - timedelta(days=40)), 24 * 38, 400)
    insert(db, rows)
    assert admin.get(RETENTION).json()["cohorts"] == []  # not built yet

    pipeline.materialize([dbt_models])
    weekly, return_event = api_triangle(admin, "week")
    assert return_event is None
    assert weekly == expected_triangle(rows, 7, None)
    daily, _ = api_triangle(admin, "day")
    assert daily == expected_triangle(rows, 1, None)

    # The return event comes from the settings through Dagster into the dbt var.
    Pipeline(Settings(database_url=database_url, retention_return_event="purchase")).materialize([dbt_models])
    weekly, return_event = api_triangle(admin, "week")
    assert return_event == "purchase"
    assert weekly == expected_triangle(rows, 7, "purchase")

    # The planted cohorts alone, by construction (the random users are named u*).
    planted = [r for r in rows if r["user"][0] in "ab"]
    mine = expected_triangle(planted, 7, None)
    assert mine[w0][0] == 10 and mine[w0][1][:4] == [10, 6, 0, 3]
    assert mine[w2] == (4, [4, 2])
    only = expected_triangle(planted, 7, "purchase")
    assert only[w0][1][:4] == [0, 0, 0, 3] and only[w2] == (4, [0, 2])
    db.execute("DELETE FROM events WHERE distinct_id LIKE 'u%'")
    pipeline.materialize([dbt_models])
    weekly, _ = api_triangle(admin, "week")
    assert weekly == {**mine} == expected_triangle(planted, 7, None)
    cohorts = admin.get(RETENTION, params={"period": "week", "start": at(w2).isoformat()}).json()["cohorts"]
    assert [c["cohort"] for c in cohorts] == [w2.isoformat()]
    assert admin.get(RETENTION, params={"period": "month"}).status_code == 400


def test_saved_funnels_are_built_daily_with_the_live_definition(pipeline, db, admin):
    from orchestration.dbt import dbt_models
    from orchestration.funnels import funnel_results

    db.execute("TRUNCATE saved_funnels")
    today = at(datetime.now(UTC).date(), 0)
    rows = random_rows(random.Random(9), today - timedelta(days=4), 24 * 4, 5000)
    insert(db, rows)
    created = admin.post(SAVED, json={"name": "checkout", "steps": STEPS, "window": "2h", "range_days": 3})
    assert created.status_code == 201, created.text
    funnel_id = created.json()["id"]
    other = admin.post(SAVED, json={"name": "repeat", "steps": ["view_item", "view_item"], "window": "30m"}).json()[
        "id"
    ]
    assert admin.get(f"{SAVED}{funnel_id}/").json()["results"] is None  # until the next run

    pipeline.materialize([dbt_models, funnel_results])
    saved = admin.get(f"{SAVED}{funnel_id}/").json()
    start, end = today - timedelta(days=3), today
    assert (datetime.fromisoformat(saved["range_start"]), datetime.fromisoformat(saved["range_end"])) == (start, end)
    expected = reference_funnel(rows, STEPS, start, end, timedelta(hours=2))["__total__"]
    assert [(r["users"], r["median_seconds_from_previous"]) for r in saved["results"]] == expected
    assert expected[2][0] > 0
    live = admin.get(
        FUNNEL, params={"steps": ",".join(STEPS), "window": "2h", "start": start.isoformat(), "end": end.isoformat()}
    ).json()
    assert saved["results"] == live["results"]

    repeat = admin.get(f"{SAVED}{other}/").json()
    ref = reference_funnel(rows, ["view_item", "view_item"], today - timedelta(days=30), end, timedelta(minutes=30))[
        "__total__"
    ]
    assert [(r["users"], r["median_seconds_from_previous"]) for r in repeat["results"]] == ref

    assert [f["id"] for f in admin.get(SAVED).json()["results"]] == [funnel_id, other]
    assert admin.delete(f"{SAVED}{other}/").status_code == 204
    assert admin.get(f"{SAVED}{other}/").status_code == 404
    bad = admin.post(SAVED, json={"name": "", "steps": ["a"], "window": "1y", "range_days": 0, "x": 1})
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"name", "steps", "window", "range_days", "x"}


def saved_funnel_table(db, funnel_id: int) -> list[dict]:
    cur = db.execute("SELECT * FROM analytics.funnel_results WHERE funnel_id = %s ORDER BY step", (funnel_id,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def live_rows(admin, funnel_id: int, name: str, steps: list[str], window: str, start: datetime, end: datetime):
    """The live endpoint's answer over [start, end), as rows of analytics.funnel_results."""
    live = admin.get(
        FUNNEL, params={"steps": ",".join(steps), "window": window, "start": start.isoformat(), "end": end.isoformat()}
    )
    assert live.status_code == 200, live.text
    body = live.json()
    return [
        {
            "funnel_id": funnel_id,
            "funnel_name": name,
            "range_start": start,
            "range_end": end,
            "window_seconds": body["window_seconds"],
            **r,
        }
        for r in body["results"]
    ]


def as_json_numbers(rows: list[dict]) -> list[dict]:
    """The table's numeric columns as the JSON answer's floats."""
    return [{k: float(v) if isinstance(v, Decimal) else v for k, v in r.items()} for r in rows]


def test_saved_funnel_rows_are_the_live_endpoints_answer(pipeline, db, admin):
    """The daily asset runs the endpoint's query: its rows are the endpoint's answer over the same range,
    step 1's conversion from the previous step (1.0) included, on data planted at the window's edge,
    with repeated steps, ties, entries before the range and steps after its end."""
    from orchestration.dbt import dbt_models
    from orchestration.funnels import funnel_results

    db.execute("TRUNCATE saved_funnels")
    today = at(datetime.now(UTC).date(), 0)
    start = today - timedelta(days=2)
    t, m, h = start + timedelta(hours=10), timedelta(minutes=1), timedelta(hours=1)
    rows = [
        *[ev("a", s, t + d) for s, d in (("app_open", 0 * m), ("view_item", 10 * m), ("purchase", 30 * m))],
        # b: the purchase exactly one window after the open is out
        *[ev("b", s, t + d) for s, d in (("app_open", 0 * m), ("view_item", 20 * m), ("purchase", h))],
        # c: repeated opens and views: anchored at the first open, each step the earliest after the previous
        *[ev("c", s, t + k * m) for k, s in enumerate(["app_open", "app_open", "view_item", "view_item", "purchase"])],
        # d: a view at the open's instant is not after it
        *[
            ev("d", s, t + d)
            for s, d in (("app_open", 0 * m), ("view_item", 0 * m), ("view_item", 5 * m), ("purchase", 7 * m))
        ],
        # e: enters 10 minutes before the range's end, finishes after it, inside the window
        *[ev("e", s, today + d) for s, d in (("app_open", -10 * m), ("view_item", 5 * m), ("purchase", 20 * m))],
        # f: an open and a view before the range do not count; it enters with its first open in the range
        *[
            ev("f", s, start + d)
            for s, d in (("app_open", -5 * m), ("view_item", -m), ("app_open", h), ("view_item", h + m))
        ],
        # g: enters after the range's end (today)
        *[ev("g", s, today + d) for s, d in (("app_open", m), ("view_item", 2 * m))],
        # h: its first attempt runs out of time; a later open does not restart it
        *[ev("h", s, t + d) for s, d in (("app_open", 0 * m), ("app_open", 2 * h), ("view_item", 2 * h + m))],
    ]
    insert(db, rows)
    funnels = {
        "checkout": (STEPS, [7, 6, 4]),
        "second look": (["view_item", "view_item", "purchase"], [6, 2, 2]),
    }
    ids = {}
    for name, (steps, _) in funnels.items():
        created = admin.post(SAVED, json={"name": name, "steps": steps, "window": "1h", "range_days": 2})
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]

    pipeline.materialize([dbt_models, funnel_results])
    for name, (steps, users) in funnels.items():
        table = as_json_numbers(saved_funnel_table(db, ids[name]))
        assert [r["users"] for r in table] == users
        assert table[0]["conversion_from_previous"] == 1.0
        assert table == live_rows(admin, ids[name], name, steps, "1h", start, today)
        assert reference_funnel(rows, steps, start, today, h)["__total__"] == [
            (r["users"], r["median_seconds_from_previous"]) for r in table
        ]

    # As of another instant (the asset's config, as tests and backfills pin it): the range ends at its day's midnight.
    as_of = today - timedelta(hours=7)
    pipeline.materialize(
        [funnel_results], run_config={"ops": {"analytics__funnel_results": {"config": {"as_of": as_of.isoformat()}}}}
    )
    earlier = as_json_numbers(saved_funnel_table(db, ids["checkout"]))
    assert {(r["range_start"], r["range_end"]) for r in earlier} == {
        (start - timedelta(days=1), start + timedelta(days=1))
    }
    assert earlier == live_rows(
        admin, ids["checkout"], "checkout", STEPS, "1h", start - timedelta(days=1), start + timedelta(days=1)
    )
    assert [r["users"] for r in earlier] == [6, 5, 3]
