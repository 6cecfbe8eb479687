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


def test_some_demo_users_leave_and_come_back_less_before_they_do():
    sessions = plan_demo(users=200, days=60, now=NOW, seed=3)
    last_seen: dict[str, datetime] = {}
    for s in sessions:
        last_seen[s.distinct_id] = max(last_seen.get(s.distinct_id, s.started_at), s.started_at)
    gone = [u for u, last in last_seen.items() if last < NOW - timedelta(days=14)]
    assert 0.1 * len(last_seen) < len(gone) < 0.4 * len(last_seen)  # a quarter leave, some late in the period
    # Before leaving, a leaver's sessions thin out: more in the first half of its active time than the second.
    first = sessions[0].started_at
    for user in gone:
        starts = [s.started_at for s in sessions if s.distinct_id == user]
        if len(starts) < 10:
            continue
        middle = first + (last_seen[user] - first) / 2
        assert sum(t < middle for t in starts) >= sum(t >= middle for t in starts)
