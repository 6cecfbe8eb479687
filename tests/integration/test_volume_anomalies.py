"""Volume anomalies end to end: raw events -> hourly aggregates (dbt) -> the anomalies asset and its check
(Dagster) -> analytics.agg_event_volume_anomalies -> the admin endpoint and the dashboard.

Four weeks of a seasonal event stream are planted around the judged hours (only the hours the baseline
reads: the same hours of the previous weeks, and half a day either side), then a 5x drop for 3 hours."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.e2e.test_dashboard_http import signed_in_client
from tests.integration.test_pipeline import event, insert_events

ANOMALIES = "/api/v1/analytics/admin/behaviour/anomalies/"
JUDGED_HOURS = 12
DROPPED = (4, 5, 6)  # judged hours (from the first) with a fifth of their usual events


def key(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d-%H:%M")


def planted_events(first: datetime) -> list[dict]:
    rng = np.random.default_rng(11)
    received = datetime.now(UTC) - timedelta(hours=1)
    hours = set()
    for week in range(5):  # the judged hours and the same hours of the 4 weeks before, with 12 hours either side
        for offset in range(-12, JUDGED_HOURS + 12):
            hours.add(first - timedelta(weeks=week) + timedelta(hours=offset))
    rows = []
    for hour in sorted(hours):
        if hour >= first + timedelta(hours=JUDGED_HOURS):
            continue
        n = int(rng.poisson(90 * (1 + 0.5 * math.sin(2 * math.pi * hour.hour / 24))))
        if hour in {first + timedelta(hours=h) for h in DROPPED}:
            n //= 5
        rows += [event(hour + timedelta(seconds=int(s)), f"u{s % 40}", None, received_at=received) for s in range(n)]
        rows += [event(hour, "u1", None, event_type="purchase", received_at=received)]  # too few to judge
    # A type seen for the first time: no history, no verdict.
    rows += [
        event(first + timedelta(hours=h, seconds=s), "u2", None, event_type="new_feature", received_at=received)
        for h in range(JUDGED_HOURS)
        for s in range(50)
    ]
    return rows


def test_a_planted_drop_is_flagged_listed_and_drawn(pipeline, db, admin, server, admin_key):
    from dagster import PartitionKeyRange, materialize

    from orchestration.anomalies import volume_anomalies_asset
    from orchestration.dbt import dbt_models
    from orchestration.partitions import partition_range_tags

    pipeline.materialize([dbt_models])  # the staging views
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    insert_events(db, planted_events(first))
    anomalies = volume_anomalies_asset(pipeline.hourly_aggregates.partitions_def)
    # One run over the judged hours, as catch-up's and the schedule's runs of the hourly_aggregates job.
    tags = partition_range_tags(PartitionKeyRange(key(first), key(first + timedelta(hours=JUDGED_HOURS - 1))))
    result = materialize([pipeline.hourly_aggregates, anomalies], resources=pipeline.resources, tags=tags)
    assert result.success
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "no_new_volume_anomalies"]
    assert (check.passed, check.metadata["anomalies"].value, check.metadata["high"].value) == (False, 3, 3)
    dropped = [first + timedelta(hours=h) for h in DROPPED]
    rows = db.execute(
        "SELECT hour, event_type, direction, severity, history_weeks FROM analytics.agg_event_volume_anomalies"
        " WHERE severity IS NOT NULL ORDER BY hour"
    ).fetchall()
    assert rows == [(hour, "screen_view", "drop", "high", 4) for hour in dropped]
    judged_types = db.execute(
        "SELECT event_type, count(*) FROM analytics.agg_event_volume_anomalies GROUP BY 1"
    ).fetchall()
    assert judged_types == [("screen_view", JUDGED_HOURS)]  # purchase: too few events; new_feature: cold start

    # Idempotent: judging the hours again replaces their rows.
    (before,) = db.execute("SELECT max(judged_at) FROM analytics.agg_event_volume_anomalies").fetchone()
    assert materialize([anomalies], resources=pipeline.resources, tags=tags).success
    assert db.execute(
        "SELECT count(*), count(severity), min(judged_at) > %s FROM analytics.agg_event_volume_anomalies", (before,)
    ).fetchone() == (JUDGED_HOURS, 3, True)

    # The admin endpoint: newest first, paginated, filtered.
    page = admin.get(ANOMALIES, params={"limit": 2}).json()
    assert [(r["hour"], r["direction"], r["severity"]) for r in page["results"]] == [
        (hour.isoformat(), "drop", "high") for hour in reversed(dropped[1:])
    ]
    rest = admin.get(page["next"]).json()
    assert [r["hour"] for r in rest["results"]] == [dropped[0].isoformat()] and rest["next"] is None
    assert admin.get(rest["previous"]).json()["results"] == page["results"]
    for params, found in [
        ({"event_type": "screen_view", "severity": "high", "direction": "drop"}, 3),
        ({"direction": "spike"}, 0),
        ({"severity": "low"}, 0),
        ({"event_type": "purchase"}, 0),
        ({"start": dropped[1].isoformat(), "end": dropped[2].isoformat()}, 1),
    ]:
        assert len(admin.get(ANOMALIES, params=params).json()["results"]) == found, params

    # The dashboard draws the hourly counts, the band and the anomalies, and lists them.
    with signed_in_client(server, admin_key) as client:
        html = client.get("/admin/anomalies", params={"event_type": "screen_view"}).text
    assert 'id="anomalies-chart"' in html and "<svg" in html
    for hour in dropped:
        assert f'data-hour="{hour.isoformat()}"' in html


@pytest.mark.parametrize(
    "params, field",
    [
        ({"severity": "huge"}, "severity"),
        ({"direction": "up"}, "direction"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "eyJrIjpbdHJ1ZV0sImYiOnRydWV9"}, "cursor"),
        ({"start": "yesterday"}, "start"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_the_anomalies_endpoint_refuses_bad_parameters(admin, params, field):
    answer = admin.get(ANOMALIES, params=params)
    assert answer.status_code == 400
    assert answer.json()["error"] == ("invalid_cursor" if field == "cursor" else "invalid_parameter")
    assert field in answer.json()["fields"]
