"""The promise to mobile teams, under fire: an acknowledged event is never lost and never stored twice.

The API runs as its own process (`eventtrack api`, uvicorn) on a throwaway Postgres; a pool of
client threads sends batches with fresh uuids and remembers which ones got a 200. Then the API
is killed (SIGKILL), stopped (SIGTERM), or Postgres is killed, and the table is checked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import httpx
import psycopg

from eventtrack.migrate import migrate
from tests.conftest import RunningServer, free_port, settings_for, throwaway_postgres

BATCH = "/api/v1/analytics/batch/"


@contextmanager
def api_process(database_url: str, **more_env: str):
    """`eventtrack api` in its own process group (`more_env`: settings, e.g. API_WORKERS="2")."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "API_PORT": str(port), "COMMIT_TIMEOUT_SECONDS": "3", **more_env}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "eventtrack"), "api"], env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "API did not start"
            time.sleep(0.1)
        yield proc, base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Load:
    """Client threads posting batches; records acknowledged uuids and every status seen."""

    def __init__(self, base: str, threads: int = 8, batch_size: int = 20, pause: float = 0.0):
        self.base = base
        self.batch_size = batch_size
        self.pause = pause  # between a thread's requests: a lighter load
        self.acked: list[str] = []
        self.sent: list[dict] = []
        self.statuses: Counter = Counter()
        self.slowest = 0.0
        self.answers: list[tuple[float, float, int | str]] = []  # (sent, answered, status), monotonic clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._stop.is_set():
                events = [
                    {"distinct_id": "load", "event": "tick", "uuid": str(uuid.uuid4())} for _ in range(self.batch_size)
                ]
                began = time.monotonic()
                try:
                    response = client.post(BATCH, json={"events": events})
                    status = response.status_code
                except httpx.HTTPError:
                    status = "connection_error"
                    time.sleep(0.05)
                answered = time.monotonic()
                with self._lock:
                    self.slowest = max(self.slowest, answered - began)
                    self.answers.append((began, answered, status))
                    self.statuses[status] += 1
                    self.sent.extend(events)
                    if status == 200:
                        self.acked.extend(e["uuid"] for e in events)
                self._stop.wait(self.pause)

    def wait_for_acks(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acks"
            time.sleep(0.05)


def stored_counts(database_url: str) -> Counter:
    with psycopg.connect(database_url) as conn:
        return Counter(str(r[0]) for r in conn.execute("SELECT uuid FROM events"))


def assert_acked_stored_exactly_once(database_url: str, acked: list[str]) -> Counter:
    stored = stored_counts(database_url)
    missing = [u for u in acked if stored[u] == 0]
    doubled = [u for u, n in stored.items() if n > 1]
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert not doubled, f"{len(doubled)} events stored twice"
    return stored


def test_sigkill_mid_load_loses_no_acknowledged_event_and_resends_are_not_doubled():
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        with api_process(url) as (proc, base):
            with Load(base) as load:
                load.wait_for_acks(2000)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                time.sleep(0.3)
            acked, sent = list(load.acked), list(load.sent)
        assert len(acked) >= 2000
        assert_acked_stored_exactly_once(url, acked)

        # The apps resend everything they did not get an answer for (and some they did): no doubles.
        with api_process(url) as (_, base), httpx.Client(base_url=base, timeout=30) as client:
            for i in range(0, len(sent), 500):
                assert client.post(BATCH, json={"events": sent[i : i + 500]}).status_code == 200
        stored = assert_acked_stored_exactly_once(url, acked)
        assert set(stored) == {e["uuid"] for e in sent}


def test_sigterm_finishes_acknowledged_work_then_exits():
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        with api_process(url) as (proc, base):
            with Load(base) as load:
                load.wait_for_acks(1000)
                proc.send_signal(signal.SIGTERM)
                # uvicorn re-raises the signal once its graceful shutdown is done.
                assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
            acked = list(load.acked)
        assert 500 not in load.statuses
        assert_acked_stored_exactly_once(url, acked)


def test_postgres_killed_mid_load_gives_503_then_recovers_without_restart():
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        with api_process(url) as (proc, base):
            with Load(base, threads=4) as load:
                load.wait_for_acks(1000)
                pg.kill()
                time.sleep(3)
                during = dict(load.statuses)
                pg.restart()
                before = len(load.acked)
                load.wait_for_acks(before + 1000, timeout=30)  # recovered by itself
            assert proc.poll() is None
        assert 503 in during, during
        assert 500 not in load.statuses and set(load.statuses) <= {200, 503}, load.statuses
        assert load.slowest < 8, f"a request hung {load.slowest:.1f} s"
        assert_acked_stored_exactly_once(url, load.acked)


def test_writes_in_flight_when_postgres_goes_down_answer_503_at_once():
    """An immediate shutdown whose backends do not exit at once: Postgres gives them 5 s before SIGKILL
    (frozen here, as one stuck in its exit handler or on I/O is). The connection of the write in flight
    stays open meanwhile; its requests answer 503 as soon as the server stops taking connections, not
    at their commit timeout, and the API recovers by itself once Postgres is back."""
    with throwaway_postgres() as pg:
        url = pg.url()
        migrate(url, 90, 7)
        with RunningServer(settings_for(url)) as server, Load(server.url, threads=4) as load:
            load.wait_for_acks(500)
            with psycopg.connect(url, autocommit=True) as conn:
                sql = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                backends = [pid for (pid,) in conn.execute(sql)]
            for pid in backends:
                os.kill(pid, signal.SIGSTOP)
            went_down = time.monotonic()
            pg.kill()  # returns when the postmaster is gone, after SIGKILLing the frozen backends
            pg.restart()
            load.wait_for_acks(len(load.acked) + 500)
        in_flight = [(sent, answered, status) for sent, answered, status in load.answers if sent < went_down < answered]
        assert any(status == 503 for _, _, status in in_flight), in_flight
        slow = [
            (answered - max(sent, went_down), status) for sent, answered, status in load.answers if answered > went_down
        ]
        assert max(seconds for seconds, _ in slow) < 3, sorted(slow, reverse=True)[:5]
        assert set(load.statuses) <= {200, 503}, load.statuses
        assert_acked_stored_exactly_once(url, load.acked)
