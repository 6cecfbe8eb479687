"""Webhook destinations end to end: the capture API, the delivery worker (`eventtrack deliver`, its own process)
and a real receiver (uvicorn, tests/e2e/webhook_receiver.py) that fails at random and is killed mid-stream.

At least once, in arrival order, signed; a batch refused with a 4xx is dead-lettered and nothing after it is
stuck; a failing destination pauses; an erasure reaches the events still waiting; a replay re-sends."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_until
from tests.e2e.test_metrics import metric

ROOT = Path(__file__).resolve().parents[2]
DESTINATIONS = "/api/v1/analytics/admin/destinations/"
BATCH = "/api/v1/analytics/batch/"
SECRET = "test-secret-" + "x" * 20
# The worker at test speed: horizon polls, scans for destinations and retries in tens of milliseconds.
FAST = {
    "STREAM_POLL_SECONDS": "0.05",
    "DELIVERY_SCAN_SECONDS": "0.2",
    "DELIVERY_BACKOFF_SECONDS": "0.05",
    "DELIVERY_BACKOFF_MAX_SECONDS": "0.3",
}


class Receiver:
    def __init__(self, log: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._env = {**os.environ, "RECEIVER_LOG": str(log), "RECEIVER_SECRET": SECRET, **env}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "uvicorn", "tests.e2e.webhook_receiver:app", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--log-level", "warning"], env=self._env, cwd=ROOT, start_new_session=True
        )
        wait_until(lambda: self._answers(), timeout=20)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code >= 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def mode(self, mode: str) -> None:
        httpx.post(f"{self.url}/mode", content=mode)

    def records(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


@contextmanager
def receiver(tmp_path: Path, **env: str) -> Iterator[Receiver]:
    running = Receiver(tmp_path / f"received-{uuid.uuid4().hex[:6]}.jsonl", **env)
    running.start()
    try:
        yield running
    finally:
        running.kill()


class Worker:
    def __init__(self, database_url: str, **env: str):
        self._env = {**os.environ, "DATABASE_URL": database_url, **FAST, **env}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eventtrack_cli.main", "deliver"], env=self._env, cwd=ROOT, start_new_session=True
        )

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def worker(database_url: str, **env: str) -> Iterator[Worker]:
    running = Worker(database_url, **env)
    running.start()
    try:
        yield running
    finally:
        running.kill()


def new_event(event_type: str = "delivery_test", distinct_id: str = "d-user") -> dict:
    return {"event_type": event_type, "distinct_id": distinct_id, "uuid": str(uuid.uuid4())}


def destination(admin, url: str, **fields) -> dict:
    body = {"name": "test hook", "url": url, "secret": SECRET, **fields}
    answer = admin.post(DESTINATIONS, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def caught_up(admin, destination_id: int, newest: int) -> dict | None:
    d = admin.get(f"{DESTINATIONS}{destination_id}/").json()
    return d if d["cursor_seq"] >= newest and d["lag"]["events"] == 0 else None


def test_at_least_once_in_order_through_a_flaky_receiver_and_killed_processes(api, admin, db, database_url, tmp_path):
    rng = random.Random(20261203)
    with receiver(tmp_path, RECEIVER_MODE="chaos", RECEIVER_CHAOS="0.3", RECEIVER_HANG_SECONDS="1.0") as rcv:
        d = destination(admin, f"{rcv.url}/hook", batch_size=50, max_wait_ms=50, timeout_ms=700)
        with worker(database_url) as w:
            sent: list[dict] = []
            poison_at = 17

            def send() -> None:
                for i in range(30):
                    batch = [new_event() for _ in range(50)]
                    if i == poison_at:
                        batch[25] = new_event("poison")
                    assert api.post(BATCH, json={"batch": batch}).status_code == 200
                    sent.extend(batch)
                    time.sleep(0.1)

            sender = threading.Thread(target=send)
            sender.start()
            kills = 0
            for at in sorted(rng.uniform(0.5, 2.5) for _ in range(3)):
                time.sleep(max(0.0, at - 0.5))
                w.kill()  # the delivery worker, mid-batch or between batches
                w.start()
                kills += 1
                if kills == 2:  # and the receiver: what it answered so far is in its log
                    rcv.kill()
                    time.sleep(0.3)
                    rcv.start()
                    kills += 1
            sender.join()
            newest = db.execute("SELECT max(ingest_seq) FROM events").fetchone()[0]
            final = wait_until(lambda: caught_up(admin, d["id"], newest), timeout=90, interval=0.2)

    committed = db.execute("SELECT ingest_seq, uuid::text FROM events ORDER BY ingest_seq").fetchall()
    assert len(committed) == len(sent) == 1500
    records = rcv.records()
    assert records and all(r["signature_ok"] for r in records)
    assert all(r["batch_id"] == r["webhook_id"] for r in records)
    letters = db.execute("SELECT event_uuids::text[], status, response_body FROM destination_dead_letters").fetchall()
    dead = {u for uuids, _, _ in letters for u in uuids}
    poison = next(e["uuid"] for e in sent if e["event_type"] == "poison")
    assert poison in dead and all(status == 400 and "bad batch" in body for _, status, body in letters)
    assert len(dead) <= 50  # one batch

    delivered = [(seq, u) for r in records if r["status"] == 200 for seq, u in zip(r["seqs"], r["uuids"], strict=True)]
    first_seen: dict[str, int] = {}
    for seq, u in delivered:
        first_seen.setdefault(u, seq)
    order = list(first_seen.values())
    assert order == sorted(order), "first deliveries out of arrival order"
    assert set(first_seen) | dead == {u for _, u in committed}, "an event was neither delivered nor dead-lettered"
    assert not set(first_seen) & dead
    duplicates = len(delivered) - len(first_seen)
    failures = [r for r in records if r["status"] != 200]
    # At most the batch in flight at each kill, and at each answer of 200 that came after the worker's timeout
    # (a loaded machine): the worker counted a failed attempt the receiver did not.
    late_answers = max(0, final["failed_attempts"] - len(failures))
    assert duplicates <= 50 * (kills + late_answers), (duplicates, kills, late_answers)
    kinds = {r["status"] for r in failures}
    assert 400 in kinds and len(kinds & {500, 429, 503}) >= 2, kinds  # the chaos happened (at random)
    assert final["delivered_events"] >= len(first_seen) - 50 * kills and final["failed_attempts"] >= len(failures) / 2


def test_a_failing_destination_pauses_an_erasure_reaches_its_queue_and_a_replay_resends(
    api, admin, db, database_url, tmp_path
):
    with receiver(tmp_path, RECEIVER_MODE="fail") as rcv, worker(database_url):
        d = destination(admin, f"{rcv.url}/hook", batch_size=10, max_wait_ms=0, timeout_ms=500, pause_after_seconds=1)
        erased = [new_event(distinct_id="erase-me") for _ in range(5)]
        kept = [new_event(distinct_id="keep-me") for _ in range(5)]
        assert api.post(BATCH, json={"batch": [*erased, *kept]}).status_code == 200
        paused = wait_until(
            lambda: (x := admin.get(f"{DESTINATIONS}{d['id']}/").json())["status"] == "paused" and x, timeout=20
        )
        assert paused["paused_reason"].startswith("failing since") and "HTTP 503" in paused["paused_reason"]
        assert paused["lag"]["events"] == 10 and paused["consecutive_failures"] >= 1
        text = api.get("/metrics").text
        label = f'{{destination="{d["id"]}"}}'
        assert metric(text, "eventtrack_destination_paused", label) == 1
        assert metric(text, "eventtrack_destination_lag_events", label) == 10
        assert metric(text, "eventtrack_destination_lag_seconds", label) > 0
        assert metric(text, "eventtrack_destination_failed_attempts_total", label) >= 1
        attempts = len(rcv.records())
        time.sleep(0.5)
        assert len(rcv.records()) == attempts  # paused: no more attempts

        assert admin.delete("/api/v1/analytics/admin/persons/erase-me/").status_code == 200
        rcv.mode("ok")
        resumed = admin.patch(f"{DESTINATIONS}{d['id']}/", json={"status": "active"}).json()
        assert resumed["status"] == "active" and resumed["paused_reason"] is None
        newest = db.execute("SELECT max(ingest_seq) FROM events").fetchone()[0]
        wait_until(lambda: caught_up(admin, d["id"], newest), timeout=20)
        text = api.get("/metrics").text
        assert metric(text, "eventtrack_destination_delivered_events_total", label) == 5
        assert metric(text, "eventtrack_destination_lag_events", label) == 0
        ok = [r for r in rcv.records() if r["status"] == 200]
        assert sorted(u for r in ok for u in r["uuids"]) == sorted(e["uuid"] for e in kept)
        assert not any("erase-me" in r["distinct_ids"] for r in ok)

        first = db.execute("SELECT min(ingest_seq) FROM events").fetchone()[0]
        replayed = admin.post(f"{DESTINATIONS}{d['id']}/replay/", json={"from": first})
        assert replayed.status_code == 200 and replayed.json()["cursor_seq"] == first - 1
        wait_until(lambda: len([r for r in rcv.records() if r["status"] == 200]) > len(ok), timeout=20)
        again = [r for r in rcv.records() if r["status"] == 200][len(ok) :]
        assert sorted(u for r in again for u in r["uuids"]) == sorted(e["uuid"] for e in kept)


def test_definitions_are_checked_field_by_field(admin):
    answer = admin.post(
        DESTINATIONS,
        json={"url": "ftp://x", "batch_size": 0, "filters": ["plan=pro"], "colour": "red", "secret": "short"},
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "validation_error"
    assert set(body["fields"]) == {"name", "url", "batch_size", "filters", "colour", "secret"}
    created = destination(admin, "https://example.test/hook", event_types=["purchase"], filters=["properties.plan=pro"])
    assert (
        created["secret"] == SECRET
        and created["status"] == "active"
        and created["lag"] == {"events": 0, "seconds": 0.0}
    )
    generated = admin.post(DESTINATIONS, json={"name": "b", "url": "https://example.test/b"}).json()
    assert generated["secret"].startswith("whsec_")
    replaced = admin.put(f"{DESTINATIONS}{generated['id']}/", json={"name": "b2", "url": "https://example.test/b"})
    assert replaced.json()["secret"] == generated["secret"]  # kept when left out
    assert admin.post(f"{DESTINATIONS}{created['id']}/replay/", json={"from": "yesterday"}).status_code == 400
    assert admin.post(f"{DESTINATIONS}{created['id']}/replay/", json={}).status_code == 400
    assert admin.get(f"{DESTINATIONS}999999/").status_code == 404
    assert admin.delete(f"{DESTINATIONS}{created['id']}/").status_code == 204
    listed = admin.get(DESTINATIONS).json()["results"]
    assert [x["id"] for x in listed] == [generated["id"]]


@pytest.mark.parametrize("retry_after", ["2"])
def test_retry_after_is_honoured(retry_after):
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from eventtrack.streaming.destinations import backoff_seconds, retry_after_seconds

    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert retry_after_seconds(retry_after, now) == 2.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None
    assert [backoff_seconds(n, 1.0, 300.0, 1.0) for n in (1, 2, 3, 10, 20)] == [1.0, 2.0, 4.0, 300.0, 300.0]
    assert backoff_seconds(3, 1.0, 300.0, 0.0) == 2.0  # the jitter spreads it over [half, whole]


def test_the_worker_keeps_the_arrival_index_summarized_while_it_delivers(api, admin, db, database_url, tmp_path):
    """Its reads skip the BRIN ranges they do not need only once those are summarized (eventtrack/streaming/tail.py):
    the worker summarizes what arrived, so nothing is left for a summarization run after it (without the worker's,
    the whole range would be, until VACUUM)."""
    with receiver(tmp_path) as rcv, worker(database_url):
        d = destination(admin, f"{rcv.url}/hook", batch_size=500, max_wait_ms=0)
        for _ in range(30):  # 15,000 rows, ~200 pages: a whole 128-page range of the day's partition and a part
            assert api.post(BATCH, json={"batch": [new_event() for _ in range(500)]}).status_code == 200
        newest = db.execute("SELECT max(ingest_seq) FROM events").fetchone()[0]
        wait_until(lambda: caught_up(admin, d["id"], newest), timeout=30, interval=0.2)
        time.sleep(2.5)  # the worker summarizes every second
        indexes = [r[0] for r in db.execute(SUMMARIZE_CHECK).fetchall()]
    # (The part of a range at the end is never summarized: it is read by every query, and costs writes nothing.)
    assert len(indexes) > 1 and sum(indexes) == 0, indexes


# Summarizes what is left to summarize in every partition, and says how much that was.
SUMMARIZE_CHECK = (
    "SELECT brin_summarize_new_values(inhrelid) FROM pg_inherits WHERE inhparent = 'events_ingest_seq_brin'::regclass"
)
