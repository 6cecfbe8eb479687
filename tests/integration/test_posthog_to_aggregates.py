"""An event sent by the real posthog SDK reaches the aggregates after the pipeline runs, its columns mapped."""

from __future__ import annotations

import platform
from datetime import UTC, datetime, timedelta

from tests.e2e.test_posthog_capture import sdk


def test_posthog_sdk_event_is_in_the_hourly_and_daily_aggregates(server, pipeline, db):
    at = (datetime.now(UTC) - timedelta(hours=26)).replace(minute=20, second=0, microsecond=0)
    client = sdk(server)
    for user in ("ph-user-1", "ph-user-2", "ph-user-1"):
        client.capture(
            "sdk_purchase", distinct_id=user, properties={"$app_version": "5.0.1", "amount": 3}, timestamp=at
        )
    client.shutdown()

    hour = at.replace(minute=0)
    pipeline.run_all(hour.strftime("%Y-%m-%d-%H:00"), at.strftime("%Y-%m-%d"))

    hourly = db.execute(
        "SELECT app_version, os_name, event_count, unique_users FROM analytics.agg_events_hourly"
        " WHERE event_type = 'sdk_purchase' AND hour = %s",
        (hour,),
    ).fetchall()
    assert hourly == [("5.0.1", platform.system(), 3, 2)]
    daily = db.execute(
        "SELECT event_count, unique_users FROM analytics.agg_events_daily WHERE event_type = 'sdk_purchase' AND day = %s",
        (at.date(),),
    ).fetchall()
    assert daily == [(3, 2)]
