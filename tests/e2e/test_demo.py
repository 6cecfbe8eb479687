"""`eventtrack demo` through the real API: every planned event stored once, resends deduplicated, clocks corrected."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from ingest_api.demo import plan_demo, send_demo


def test_demo_stream_lands_in_the_raw_tables(server, db):
    now = datetime.now(timezone.utc)
    sessions = plan_demo(users=15, days=3, now=now, seed=5)
    progress = io.StringIO()
    stats = send_demo(server.url, sessions, now, out=progress)
    assert stats["failed"] == 0 and "requests" in progress.getvalue()
    planned = {e["uuid"] for s in sessions for e in s.events}
    stored = {str(r[0]) for r in db.execute("SELECT uuid FROM events")}
    assert stored == planned  # resent batches were not stored twice
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == len(sessions)
    skewed = next(s for s in sessions if s.clock_offset)
    first = skewed.events[0]
    ts = db.execute("SELECT timestamp FROM events WHERE uuid = %s", (first["uuid"],)).fetchone()[0]
    true_time = datetime.fromisoformat(first["timestamp"]) - skewed.clock_offset
    assert abs(ts - true_time) < timedelta(seconds=5)  # the phone's wrong clock was corrected
