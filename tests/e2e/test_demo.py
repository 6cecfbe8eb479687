"""`eventtrack demo` through the real API: every planned event stored once, resends deduplicated, clocks corrected."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventtrack_cli.demo import plan_demo, send_demo
from tests.conftest import free_port

EVENTTRACK = Path(sys.executable).parent / "eventtrack"


def test_demo_stream_lands_in_the_raw_tables(server, db):
    now = datetime.now(UTC)
    sessions = plan_demo(users=15, days=3, now=now, seed=5)
    progress = io.StringIO()
    result = send_demo(server.url, sessions, now, out=progress)
    assert result.failed == 0 and "requests" in progress.getvalue()
    planned = {e["uuid"] for s in sessions for e in s.events}
    stored = {str(r[0]) for r in db.execute("SELECT uuid FROM events")}
    assert stored == planned  # resent batches were not stored twice
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == len(sessions)
    skewed = next(s for s in sessions if s.clock_offset)
    first = skewed.events[0]
    ts = db.execute("SELECT timestamp FROM events WHERE uuid = %s", (first["uuid"],)).fetchone()[0]
    true_time = datetime.fromisoformat(first["timestamp"]) - skewed.clock_offset
    assert abs(ts - true_time) < timedelta(seconds=5)  # the phone's wrong clock was corrected


def test_demo_sends_the_write_key_and_counts_refusals_by_status_and_code(server, db, write_key):
    now = datetime.now(UTC)
    sessions = plan_demo(users=3, days=1, now=now, seed=5)
    refused = send_demo(server.url, sessions, now, out=io.StringIO())
    assert refused.events == 0 and refused.failed == refused.requests > 0
    assert dict(refused.failures) == {"401 invalid_api_key": refused.requests}
    assert refused.summary() == f"{refused.requests} failed: 401 invalid_api_key ×{refused.requests}"

    accepted = send_demo(server.url, sessions, now, write_key=write_key, out=io.StringIO())
    assert accepted.failed == 0 and accepted.summary() == "0 failed"
    assert accepted.events == db.execute("SELECT count(*) FROM events").fetchone()[0] > 0


def _demo(url: str, *args: str, write_key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "WRITE_KEY")}
    if write_key:
        env["WRITE_KEY"] = write_key
    command = [str(EVENTTRACK), "demo", "--url", url, "--users", "3", "--days", "1", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_demo_command_takes_the_write_key_from_the_flag_or_WRITE_KEY_and_says_why_requests_fail(server, db, write_key):
    without = _demo(server.url)
    assert without.returncode == 1
    assert "0 events in" in without.stdout and " failed: 401 invalid_api_key ×" in without.stdout, without.stdout
    assert "--write-key" in without.stderr and "WRITE_KEY" in without.stderr

    wrong = _demo(server.url, "--write-key", "etw_revoked")
    assert wrong.returncode == 1 and "unknown or revoked" in wrong.stderr

    from_env = _demo(server.url, write_key=write_key)
    assert from_env.returncode == 0, from_env.stdout + from_env.stderr
    assert "(0 failed)" in from_env.stdout
    # A plain progress line now and then when not on a terminal, not a log line per request.
    progress = from_env.stderr.splitlines()
    assert progress and len(progress) <= 10 and "HTTP Request" not in from_env.stderr, from_env.stderr
    assert progress[-1].startswith("demo: ") and progress[-1].endswith(" requests sent")

    from_flag = _demo(server.url, "--write-key", write_key)
    assert from_flag.returncode == 0 and "(0 failed)" in from_flag.stdout


def test_demo_command_says_when_no_api_answers():
    result = _demo(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "no answer from" in result.stderr and "Traceback" not in result.stderr, result.stderr
