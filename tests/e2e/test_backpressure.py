"""Backpressure: when the database cannot keep up, new writes get 503 at once instead of piling up in memory."""

from __future__ import annotations

import threading
import time

import httpx
import psycopg

from tests.conftest import RunningServer, settings_for, wait_until
from tests.e2e.test_capture_api import assert_error

BATCH = "/api/v1/analytics/batch/"


def test_full_queue_answers_503_immediately_and_the_queued_work_still_commits(database_url, db):
    settings = settings_for(database_url, max_queued_rows=150, commit_timeout_seconds=20.0)
    batch = {"events": [{"distinct_id": "u", "event": "x"} for _ in range(50)]}
    with RunningServer(settings) as server, psycopg.connect(database_url) as blocker:
        # Hold a lock the writer needs: the database "cannot keep up".
        blocker.execute("LOCK TABLE event_uuids IN EXCLUSIVE MODE")
        statuses: list[int] = []

        def send() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                statuses.append(client.post(BATCH, json=batch).status_code)

        waiting = [threading.Thread(target=send) for _ in range(4)]  # 1 in the blocked transaction + 3 queued
        for t in waiting:
            t.start()
            time.sleep(0.2)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            began = time.monotonic()
            refused = client.post(BATCH, json=batch)
            assert time.monotonic() - began < 1
            assert_error(refused, 503, "service_unavailable")
            assert int(refused.headers["retry-after"]) >= 1
            wait_until(lambda: "eventtrack_sink_overloaded_total 1.0" in client.get("/metrics").text)
        blocker.rollback()  # the database catches up
        for t in waiting:
            t.join(timeout=30)
    assert statuses == [200, 200, 200, 200]
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 200
