from datetime import UTC, datetime, timedelta

from eventtrack_cli.demo import plan_demo

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_demo_plan_is_seeded_and_realistic():
    sessions = plan_demo(users=40, days=5, now=NOW, seed=1)
    assert plan_demo(users=40, days=5, now=NOW, seed=1)[0].events == sessions[0].events
    assert {s.os_name for s in sessions} == {"iOS", "Android"}
    assert len({s.app_version for s in sessions}) >= 3
    assert all(NOW - timedelta(days=5) <= s.started_at < NOW for s in sessions)
    assert (
        any(s.clock_offset for s in sessions) and any(s.offline for s in sessions) and any(s.resend for s in sessions)
    )
    assert any(s.ended_at is None for s in sessions) and any(s.ended_at for s in sessions)
    kinds = {e["event_type"] for s in sessions for e in s.events}
    assert {"app_open", "screen_view", "purchase_completed"} <= kinds
    uuids = [e["uuid"] for s in sessions for e in s.events]
    assert len(uuids) == len(set(uuids))
