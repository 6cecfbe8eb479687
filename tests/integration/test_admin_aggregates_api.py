"""event_counts and event-aggregates over real HTTP, after real dbt runs through Dagster.

event_counts must equal a raw GROUP BY also for events the pipeline has not aggregated yet,
and must take whole, settled hours from the aggregate (which outlives raw retention).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from tests.integration.test_pipeline import event, insert_events, random_events

COUNTS = "/api/v1/analytics/admin/events/event_counts/"
AGGREGATES = "/api/v1/analytics/admin/event-aggregates/"


def raw_counts(db, start: datetime, end: datetime) -> dict[str, int]:
    rows = db.execute(
        'SELECT event_type, count(*) FROM events WHERE "timestamp" >= %s AND "timestamp" < %s GROUP BY 1', (start, end)
    ).fetchall()
    return dict(rows)


def api_counts(admin, start: datetime, end: datetime, **extra) -> dict[str, int]:
    body = admin.get(COUNTS, params={"start": start.isoformat(), "end": end.isoformat(), **extra}).json()
    counts = {r["event_type"]: r["count"] for r in body["results"]}
    assert body["total"] == sum(counts.values())
    return counts


def test_event_counts_are_exact_before_and_after_the_pipeline_and_with_late_events(pipeline, db, admin):
    now = datetime.now(UTC)
    start = (now - timedelta(hours=30)).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(7)
    insert_events(db, random_events(rng, start, 26, 600, received_at=now - timedelta(hours=2)))
    windows = [
        (now - timedelta(hours=24), now),  # the default window, unaligned
        (start + timedelta(hours=2), start + timedelta(hours=20)),  # aligned
        (start + timedelta(hours=3, minutes=17), start + timedelta(hours=3, minutes=50)),  # inside one hour
    ]
    for window in windows:  # nothing aggregated yet: all from raw
        assert api_counts(admin, *window) == raw_counts(db, *window)

    hour_key = start.strftime("%Y-%m-%d-%H:00")
    pipeline.run_all(hour_key, start.strftime("%Y-%m-%d"))
    for window in windows:
        assert api_counts(admin, *window) == raw_counts(db, *window)

    # A phone comes back online: events for hours already aggregated, not yet seen by the pipeline.
    late = [
        event(start + timedelta(hours=5, minutes=m), "late-user", "d", event_type="purchase", received_at=now)
        for m in range(0, 60, 7)
    ]
    insert_events(db, late)
    for window in windows:
        assert api_counts(admin, *window) == raw_counts(db, *window)
    assert api_counts(admin, *windows[1], event_type="purchase") == {
        "purchase": raw_counts(db, *windows[1])["purchase"]
    }

    # Whole settled hours come from the aggregate: it still knows an hour whose raw rows are gone
    # (as after retention pruning), which a raw GROUP BY would not.
    pruned_hour = start + timedelta(hours=10)
    before = api_counts(admin, *windows[1])
    db.execute(
        'DELETE FROM events WHERE "timestamp" >= %s AND "timestamp" < %s',
        (pruned_hour, pruned_hour + timedelta(hours=1)),
    )
    assert api_counts(admin, *windows[1]) == before


def test_event_counts_refuses_bad_ranges(admin):
    assert admin.get(COUNTS, params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}).status_code == 400
    assert admin.get(COUNTS, params={"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}).status_code == 400
    assert admin.get(COUNTS, params={"start": "nope"}).status_code == 400


def test_event_aggregates_list_the_mart_rows_with_filters_and_pages(pipeline, db, admin):
    now = datetime.now(UTC)
    start = (now - timedelta(hours=30)).replace(minute=0, second=0, microsecond=0)  # a closed day partition
    insert_events(db, random_events(random.Random(3), start, 6, 300, received_at=now - timedelta(hours=2)))
    pipeline.run_all(start.strftime("%Y-%m-%d-%H:00"), start.strftime("%Y-%m-%d"))

    for granularity, table, bucket in (("hour", "agg_events_hourly", "hour"), ("day", "agg_events_daily", "day")):
        expected = db.execute(f"SELECT count(*), sum(event_count) FROM analytics.{table}").fetchone()
        rows, url = [], f"{AGGREGATES}?granularity={granularity}&limit=7"
        while url:
            body = admin.get(url).json()
            rows += body["results"]
            url = body["next"]
        assert (len(rows), sum(r["event_count"] for r in rows)) == expected
        assert [r[bucket] for r in rows] == sorted(r[bucket] for r in rows)
        keys = [(r[bucket], r["event_type"], r["app_version"], r["os_name"]) for r in rows]
        assert len(set(keys)) == len(keys)

    ios = admin.get(
        AGGREGATES, params={"granularity": "hour", "os_name": "ios", "event_type": "purchase", "limit": 1000}
    ).json()["results"]
    assert ios and all(r["os_name"] == "ios" and r["event_type"] == "purchase" for r in ios)
    assert (
        sum(r["event_count"] for r in ios)
        == db.execute("SELECT count(*) FROM events WHERE os_name = 'ios' AND event_type = 'purchase'").fetchone()[0]
    )
    assert admin.get(AGGREGATES, params={"granularity": "week"}).status_code == 400
