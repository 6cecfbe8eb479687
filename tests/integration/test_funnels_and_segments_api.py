"""Funnels and property segmentation over real HTTP against raw events in the real Postgres.

Each number is checked twice: against answers set by construction (out-of-order
and repeated steps, window expiry at the exact boundary, ties, events past `end`),
and against an independent Python computation of the documented definition on
random data.
"""

from __future__ import annotations

import random
import statistics
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest

FUNNEL = "/api/v1/analytics/admin/funnels/"
COUNTS = "/api/v1/analytics/admin/events/event_counts/"
AGGREGATES = "/api/v1/analytics/admin/event-aggregates/"
STEPS = ["app_open", "view_item", "purchase"]


def insert(db: psycopg.Connection, rows: list[dict]) -> None:
    with db.cursor() as cur:
        cur.executemany(
            'INSERT INTO events (uuid, event_type, distinct_id, os_name, properties, "timestamp", received_at)'
            " VALUES (%s, %s, %s, %s, %s::jsonb, %s, now())",
            [
                (uuid.uuid4(), r["type"], r["user"], r.get("os"), orjson.dumps(r.get("props", {})).decode(), r["ts"])
                for r in rows
            ],
        )


def ev(user: str, event_type: str, ts: datetime, os: str = "ios", **props) -> dict:
    return {"user": user, "type": event_type, "ts": ts, "os": os, "props": props}


def base_day() -> datetime:
    return (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)


def get_funnel(admin, start, end, **params) -> dict:
    response = admin.get(
        FUNNEL, params={"steps": ",".join(STEPS), "start": start.isoformat(), "end": end.isoformat(), **params}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_funnel_counts_match_the_constructed_answer(db, admin):
    d = base_day()
    start, end = d, d + timedelta(hours=12)
    t = d + timedelta(hours=1)
    m = timedelta(minutes=1)
    rows = [
        # a: converts: 10 and 20 minutes between steps
        ev("a", "app_open", t),
        ev("a", "view_item", t + 10 * m),
        ev("a", "purchase", t + 30 * m),
        # b: view and purchase before the first open do not count
        ev("b", "purchase", t - 5 * m),
        ev("b", "view_item", t - m),
        ev("b", "app_open", t),
        # c: purchase before view, nothing after the view
        ev("c", "app_open", t, "android"),
        ev("c", "purchase", t + 5 * m, "android"),
        ev("c", "view_item", t + 10 * m, "android"),
        # d: purchase exactly one window (1h) after the open: expired
        ev("d", "app_open", t),
        ev("d", "view_item", t + 20 * m),
        ev("d", "purchase", t + 60 * m),
        # e: repeated steps; anchored at the first open; 2 min and 2 min
        ev("e", "app_open", t),
        ev("e", "app_open", t + m),
        ev("e", "view_item", t + 2 * m),
        ev("e", "view_item", t + 3 * m),
        ev("e", "purchase", t + 4 * m),
        # f: the first open does not convert in time, a later one would: anchored at the first
        ev("f", "app_open", t, "android"),
        ev("f", "app_open", t + 120 * m, "android"),
        ev("f", "view_item", t + 121 * m, "android"),
        ev("f", "purchase", t + 122 * m, "android"),
        # g: same timestamp: not ordered
        ev("g", "app_open", t),
        ev("g", "view_item", t),
        # h: an open before the range is ignored; enters with the open in range: 1 minute to view
        ev("h", "app_open", start - 10 * m),
        ev("h", "app_open", t, None),
        ev("h", "view_item", t + m, None),
        # i: opens 10 minutes before end; later steps after end but inside the window count: 15 and 15 min
        ev("i", "app_open", end - 10 * m),
        ev("i", "view_item", end + 5 * m),
        ev("i", "purchase", end + 20 * m),
        # j: only an open after end: not in the funnel
        ev("j", "app_open", end + m),
        ev("j", "view_item", end + 2 * m),
    ]
    insert(db, rows)
    body = get_funnel(admin, start, end, window="1h")
    got = [
        (r["users"], r["conversion_from_previous"], r["conversion_from_first"], r["median_seconds_from_previous"])
        for r in body["results"]
    ]
    # step 1: a b c d e f g h i = 9; step 2: a c d e h i = 6; step 3: a e i = 3
    assert got == [
        (9, 1.0, 1.0, None),
        (6, round(6 / 9, 6), round(6 / 9, 6), 600.0),  # 60, 120, 600, 600, 900, 1200 s
        (3, 0.5, round(3 / 9, 6), 900.0),  # 120, 900, 1200 s
    ]
    assert body["window_seconds"] == 3600

    # Breakdown by the os of the first open: android = c f; null = h; ios = the rest.
    by_os = {
        b["value"]: [r["users"] for r in b["results"]]
        for b in get_funnel(admin, start, end, window="1h", breakdown="os_name")["breakdown"]
    }
    assert by_os == {"ios": [6, 4, 3], "android": [2, 1, 0], None: [1, 1, 0]}

    # A wider window lets d's purchase and f's first open convert.
    wide = get_funnel(admin, start, end, window="3h")
    assert [r["users"] for r in wide["results"]] == [9, 7, 5]


def reference_funnel(rows, steps, start, end, window, keep=lambda r: True, breakdown=lambda r: None):
    """The documented definition, event by event in Python."""
    by_user = defaultdict(list)
    for r in rows:
        if keep(r) and start <= r["ts"] < end + window and r["type"] in steps:
            by_user[r["user"]].append(r)
    reached: dict[object, list[list[float]]] = defaultdict(lambda: [[] for _ in steps])
    for events in by_user.values():
        opens = [r for r in events if r["type"] == steps[0] and r["ts"] < end]
        if not opens:
            continue
        anchor = min(opens, key=lambda r: r["ts"])
        t1 = prev = anchor["ts"]
        for k, step in enumerate(steps):
            if k == 0:
                for group in (breakdown(anchor), "__total__"):
                    reached[group][0].append(0.0)
                continue
            later = [r["ts"] for r in events if r["type"] == step and prev < r["ts"] < t1 + window]
            if not later:
                break
            nxt = min(later)
            for group in (breakdown(anchor), "__total__"):
                reached[group][k].append((nxt - prev).total_seconds())
            prev = nxt
    return {
        g: [(len(s), statistics.median(s) if s and k else None) for k, s in enumerate(lists)]
        for g, lists in reached.items()
    }


def random_rows(rng: random.Random, start: datetime, hours: int, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        user = f"u{rng.randrange(40)}"
        ts = start + timedelta(seconds=rng.randrange(hours * 3600))
        props = {"plan": rng.choice(["pro", "free"]), "price": rng.choice([5, 10, 12.5, 20, "abc"])}
        rows.append(ev(user, rng.choice(STEPS + ["other"]), ts, rng.choice(["ios", "android"]), **props))
    return rows


def test_funnel_matches_an_independent_computation_with_filters_and_breakdowns(db, admin):
    start = base_day()
    rows = random_rows(random.Random(11), start - timedelta(hours=2), 26, 6000)
    insert(db, rows)
    end = start + timedelta(hours=20)
    window = timedelta(hours=2)
    cases = [
        ({}, lambda r: True, lambda r: None),
        ({"filter": "properties.plan=pro"}, lambda r: r["props"]["plan"] == "pro", lambda r: None),
        ({"filter": "properties.price>=10"}, lambda r: isinstance(r["props"]["price"], (int, float)) and r["props"]["price"] >= 10, lambda r: None),
        ({"breakdown": "properties.plan"}, lambda r: True, lambda r: r["props"]["plan"]),
        ({"breakdown": "os_name", "filter": ["properties.plan!=free", "properties.price<20"]},
         lambda r: r["props"]["plan"] != "free" and isinstance(r["props"]["price"], (int, float)) and r["props"]["price"] < 20,
         lambda r: r["os"]),
    ]  # fmt: skip
    for params, keep, breakdown in cases:
        expected = reference_funnel(rows, STEPS, start, end, window, keep, breakdown)
        body = get_funnel(admin, start, end, window="2h", **params)
        total = [(r["users"], r["median_seconds_from_previous"]) for r in body["results"]]
        assert total == expected["__total__"], params
        assert total[2][0] > 0, params  # the data exercise every step
        if "breakdown" in params:
            got = {
                b["value"]: [(r["users"], r["median_seconds_from_previous"]) for r in b["results"]]
                for b in body["breakdown"]
            }
            want = {g: v + [(0, None)] * (len(STEPS) - len(v)) for g, v in expected.items() if g != "__total__"}
            assert got == want, params


@pytest.mark.parametrize(
    "params, field",
    [
        ({"steps": "app_open"}, "steps"),
        ({"steps": "a,,b"}, "steps"),
        ({"steps": ",".join(["x"] * 11)}, "steps"),
        ({"steps": "a,b", "window": "0h"}, "window"),
        ({"steps": "a,b", "window": "91d"}, "window"),
        ({"steps": "a,b", "window": "1w"}, "window"),
        ({"steps": "a,b", "filter": "plan=pro"}, "filter"),
        ({"steps": "a,b", "filter": "properties.price>=ten"}, "filter"),
        ({"steps": "a,b", "filter": "properties.x'y=1"}, "filter"),
        ({"steps": "a,b", "filter": "properties.p>=NaN"}, "filter"),
        ({"steps": "a,b", "breakdown": "properties.a'b"}, "breakdown"),
        ({"steps": "a,b", "breakdown": "distinct_id"}, "breakdown"),
        ({"steps": "a,b", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"steps": "a,b", "what": "1"}, "what"),
    ],
)
def test_funnel_refuses_bad_parameters_with_field_errors(admin, params, field):
    response = admin.get(FUNNEL, params=params)
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_counts_and_aggregates_filter_and_break_down_by_properties(db, admin):
    start = base_day()
    rows = random_rows(random.Random(5), start, 6, 800)
    insert(db, rows)
    end = start + timedelta(hours=6)
    window = {"start": start.isoformat(), "end": end.isoformat()}

    def numeric(r):
        return isinstance(r["props"]["price"], (int, float))

    body = admin.get(COUNTS, params={**window, "filter": ["properties.plan=pro", "properties.price>10"]}).json()
    expected = Counter(
        r["type"] for r in rows if r["props"]["plan"] == "pro" and numeric(r) and r["props"]["price"] > 10
    )
    assert {r["event_type"]: r["count"] for r in body["results"]} == expected
    assert body["total"] == sum(expected.values())

    body = admin.get(COUNTS, params={**window, "breakdown": "properties.price", "event_type": "purchase"}).json()
    expected = Counter(("purchase", str(r["props"]["price"])) for r in rows if r["type"] == "purchase")
    assert {(r["event_type"], r["breakdown_value"]): r["count"] for r in body["results"]} == expected

    # Hourly rows from raw events, paged through, with a breakdown by plan. The end falls inside
    # the last hour: that hour is still whole, as in the mart (hour < end).
    got, url = {}, AGGREGATES
    params = {"start": start.isoformat(), "end": (end - timedelta(minutes=30)).isoformat(), "granularity": "hour",
              "filter": "properties.price<=10", "breakdown": "properties.plan", "limit": "5"}  # fmt: skip
    while url:
        page = admin.get(url, params=params).json()
        for r in page["results"]:
            key = (datetime.fromisoformat(r["hour"]), r["event_type"], r["os_name"], r["breakdown_value"])
            assert key not in got
            got[key] = (r["event_count"], r["unique_users"])
        url, params = page["next"], None
    groups = defaultdict(list)
    for r in rows:
        if numeric(r) and r["props"]["price"] <= 10:
            groups[(r["ts"].replace(minute=0, second=0), r["type"], r["os"], r["props"]["plan"])].append(r)
    assert got == {k: (len(v), len({r["user"] for r in v})) for k, v in groups.items()}

    bad = admin.get(COUNTS, params={"filter": "properties.price>=x"})
    assert bad.status_code == 400 and "filter" in bad.json()["fields"]
