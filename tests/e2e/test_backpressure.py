"""Backpressure: when the database cannot keep up, new writes get 503 at once instead of piling up in memory."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import psycopg

from tests.conftest import RunningServer, settings_for, wait_until
from tests.e2e.test_capture_api import assert_error

BATCH = "/api/v1/analytics/batch/"


CAPTURE = "/api/v1/analytics/capture/"
POSTHOG_BATCH = "/batch/"


@contextmanager
def full_queue(database_url: str, db) -> Iterator[RunningServer]:
    """A server whose writer is blocked (a lock it needs is held: the database "cannot keep up") with one
    batch of 50 in its transaction and 150 rows queued: its queue (MAX_QUEUED_ROWS 150) is full. On exit the
    database catches up: every queued batch commits."""
    settings = settings_for(database_url, max_queued_rows=150, commit_timeout_seconds=20.0, sink_writers=1)
    batch = {"events": [{"distinct_id": "u", "event": "x"} for _ in range(50)]}
    with RunningServer(settings) as server, psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE event_uuids IN EXCLUSIVE MODE")
        statuses: list[int] = []

        def send() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                statuses.append(client.post(BATCH, json=batch).status_code)

        waiting = [threading.Thread(target=send) for _ in range(4)]
        for t in waiting:
            t.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            # Generous: on a loaded machine the four senders can take seconds to reach the queue.
            wait_until(lambda: "eventtrack_sink_queue_depth 3.0" in client.get("/metrics").text, timeout=30)
        yield server
        blocker.rollback()
        for t in waiting:
            t.join(timeout=30)
    assert statuses == [200, 200, 200, 200]
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 200


def test_full_queue_answers_503_immediately_and_the_queued_work_still_commits(database_url, db):
    with full_queue(database_url, db) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        began = time.monotonic()
        refused = client.post(BATCH, json={"events": [{"distinct_id": "u", "event": "x"} for _ in range(50)]})
        assert time.monotonic() - began < 1
        assert_error(refused, 503, "service_unavailable")
        assert int(refused.headers["retry-after"]) >= 1
        wait_until(lambda: "eventtrack_sink_overloaded_total 1.0" in client.get("/metrics").text)


def test_a_full_queue_refuses_before_the_body_is_read(database_url, db):
    """Under a spike most requests are refused: reading, parsing and validating each refused body first would
    take the CPU the accepted ones need. The proof: a request whose body never comes is still answered."""
    with full_queue(database_url, db) as server:
        for path in (BATCH, CAPTURE, POSTHOG_BATCH):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                    "Content-Length: 100000\r\n\r\n".encode()
                )
                head = sock.recv(65536)  # times out (the test fails) if the server waits for the body
            assert head.startswith(b"HTTP/1.1 503 "), (path, head)
            assert b"\r\nretry-after: 2\r\n" in head.lower(), (path, head)


SLOW_UUIDS = """
CREATE FUNCTION test_slow_uuid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$;
CREATE TRIGGER test_slow_uuid BEFORE INSERT ON event_uuids FOR EACH ROW EXECUTE FUNCTION test_slow_uuid();
"""


def test_under_overload_no_request_outwaits_the_commit_timeout_in_the_queue(database_url, db):
    """The queue holds no more than the writer commits well within the commit timeout. Otherwise requests
    are answered 503 when their timeout runs out while their rows stay queued and are committed anyway: the
    client's resend is then written twice, and under a spike that is most of the writer's work. Here a
    database that commits ~450 rows/s faces 40 clients with batches of 50 (2,000 rows, ~4.5 s of writing):
    every 503 must be an immediate refusal, so exactly the events answered 200 are stored."""
    settings = settings_for(database_url, commit_timeout_seconds=2.0)
    db.execute(SLOW_UUIDS)
    try:
        with RunningServer(settings) as server:
            warm_up = [_fresh_batch(50) for _ in range(3)]  # a server that has been running knows its writer's pace
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for batch in warm_up:
                    assert client.post(BATCH, json=batch).status_code == 200
            answers = asyncio.run(_overload(server.url, clients=40, seconds=3.0))
            with httpx.Client(base_url=server.url, timeout=30) as client:
                wait_until(lambda: "eventtrack_sink_queue_depth 0.0" in client.get("/metrics").text, timeout=60)
            stored = _settled_uuids(db)
    finally:
        db.execute("DROP TRIGGER test_slow_uuid ON event_uuids; DROP FUNCTION test_slow_uuid()")
    statuses = {status for status, _ in answers}
    assert statuses == {200, 503}, statuses  # the clients overloaded it, and nothing else went wrong
    acknowledged = {u for status, uuids in answers if status == 200 for u in uuids}
    refused = {u for status, uuids in answers if status == 503 for u in uuids}
    assert not stored & refused, f"{len(stored & refused)} events answered 503 were stored (a commit timed out)"
    assert stored == acknowledged | {e["uuid"] for batch in warm_up for e in batch["events"]}


def _fresh_batch(size: int) -> dict:
    return {"events": [{"distinct_id": "u", "event": "x", "uuid": str(uuid.uuid4())} for _ in range(size)]}


async def _overload(url: str, clients: int, seconds: float) -> list[tuple[int, list[str]]]:
    """`clients` clients posting fresh batches of 50 back to back for `seconds`; each pauses 0.2 s after a 503."""
    answers: list[tuple[int, list[str]]] = []
    deadline = asyncio.get_running_loop().time() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        while asyncio.get_running_loop().time() < deadline:
            batch = _fresh_batch(50)
            response = await client.post(BATCH, json=batch)
            answers.append((response.status_code, [e["uuid"] for e in batch["events"]]))
            if response.status_code == 503:
                assert response.headers["retry-after"] == "2"
                await asyncio.sleep(0.2)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    return answers


def _settled_uuids(db) -> set[str]:
    """The stored uuids once no more arrive (the writer may still be committing its last group)."""
    last = -1
    while True:
        count = db.execute("SELECT count(*) FROM events").fetchone()[0]
        if count == last:
            return {str(u) for (u,) in db.execute("SELECT uuid FROM events")}
        last = count
        time.sleep(0.5)


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
