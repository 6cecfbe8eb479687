"""The validation limits are built once per UTC day (the capture hot path), and move with the day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from eventtrack.partitions import retention_cutoff
from eventtrack.settings import Settings
from ingest_api.state import AppState


def test_limits_are_kept_for_the_day_and_rebuilt_on_the_next():
    settings = Settings(events_retention_days=30, max_future_skew_hours=6)
    state = AppState(settings=settings, sink=None, engine=None, config=None, horizon=None)
    morning = datetime(2024, 3, 9, 0, 0, 1, tzinfo=UTC)
    first = state.limits(morning)
    assert first.oldest_allowed == retention_cutoff(morning, 30) == datetime(2024, 2, 8, tzinfo=UTC)
    assert first.max_future == timedelta(hours=6) and first.max_event_bytes == settings.max_event_bytes
    assert state.limits(morning.replace(hour=23, minute=59)) is first
    # 23:30 on the 9th in UTC-05:00 is the 10th in UTC: the next day's cutoff.
    next_day = datetime(2024, 3, 9, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert state.limits(next_day).oldest_allowed == datetime(2024, 2, 9, tzinfo=UTC)
    assert state.limits(morning).oldest_allowed == first.oldest_allowed  # back to the 9th (a late clock): rebuilt again
