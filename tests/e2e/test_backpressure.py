"""Backpressure: when the database cannot keep up, new writes get 503 at once instead of piling up in memory."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from tests.conftest import RunningServer, settings_for, wait_until
from tests.e2e.test_capture_api import assert_error

BATCH = "/api/v1/analytics/batch/"


def test_full_queue_answers_503_immediately_and_the_queued_work_still_commits(database_url, db):
    settings = settings_for(database_url, max_queued_rows=100, commit_timeout_seconds=20.0, sink_writers=2)
    batch = {"events": [{"distinct_id": "u", "event": "x"} for _ in range(50)]}
    with RunningServer(settings) as server, psycopg.connect(database_url) as blocker:
        # Hold a lock the writer needs: the database "cannot keep up".
        blocker.execute("LOCK TABLE event_uuids IN EXCLUSIVE MODE")
        statuses: list[int] = []

        def send() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                statuses.append(client.post(BATCH, json=batch).status_code)

        # One in each writer's blocked transaction, then 2 x 50 rows queued: the queue is full.
        waiting = [threading.Thread(target=send) for _ in range(4)]
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


def test_concurrent_writers_store_overlapping_resends_exactly_once(database_url, db):
    """Several writers commit groups side by side: the same uuids resent concurrently, in different orders,
    are stored once, and the writers never fail on each other (no deadlock, no retry one by one)."""
    settings = settings_for(database_url, sink_writers=3)
    uuids = [str(uuid.uuid4()) for _ in range(300)]
    events = [{"distinct_id": "u", "event": "x", "uuid": u} for u in uuids]

    def send(seed: int) -> list[int]:
        order = events[:]
        random.Random(seed).shuffle(order)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return [client.post(BATCH, json={"events": order[i : i + 20]}).status_code for i in range(0, 300, 20)]

    with RunningServer(settings) as server:
        with ThreadPoolExecutor(8) as pool:
            statuses = [s for result in pool.map(send, range(8)) for s in result]
        metrics = httpx.get(server.url + "/metrics").text
    assert set(statuses) == {200}
    assert db.execute("SELECT count(*), count(DISTINCT uuid) FROM events").fetchone() == (300, 300)
    assert "eventtrack_database_errors_total 0.0" in metrics
