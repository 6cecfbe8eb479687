"""The live tail (GET /api/v1/analytics/admin/events/stream/) over real HTTP: events appear within a second
of their 200 whichever API worker took them, a resume with Last-Event-ID neither skips nor repeats, filters,
heartbeats, and a client that stops reading is cut off."""

from __future__ import annotations

import json
import queue
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from ingest_api.admin.key_store import create_admin_key
from tests.conftest import RunningServer, settings_for, wait_until
from tests.e2e.test_crash_safety import api_process

STREAM = "/api/v1/analytics/admin/events/stream/"
CAPTURE = "/api/v1/analytics/capture/"
BATCH = "/api/v1/analytics/batch/"
DESTINATIONS = "/api/v1/analytics/admin/destinations/"


@dataclass
class Message:
    event: str  # "event", "close", or "" for an id-only / comment-only block
    id: int | None
    data: str
    comments: list[str]
    at: float  # time.monotonic() when it was read


class Tail:
    """An SSE client in a thread: every message block, as read, in a queue."""

    def __init__(self, base: str, key: str, params: dict | None = None, last_event_id: int | None = None):
        headers = {"Authorization": f"Bearer {key}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.messages: queue.Queue[Message] = queue.Queue()
        self.headers: dict[str, str] = {}
        self._client = httpx.Client(base_url=base, timeout=httpx.Timeout(30, read=60))
        self._request = self._client.build_request("GET", STREAM, params=params, headers=headers)
        self._open = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self.status: int | None = None

    def __enter__(self) -> Tail:
        self._thread.start()
        assert self._open.wait(10), "the stream did not open"
        return self

    def __exit__(self, *exc) -> None:
        self._client.close()

    def _read(self) -> None:
        try:
            response = self._client.send(self._request, stream=True)
            self.status, self.headers = response.status_code, dict(response.headers)
            self._open.set()
            block: dict = {"event": "", "id": None, "data": [], "comments": []}
            for line in response.iter_lines():
                if line == "":
                    self.messages.put(
                        Message(
                            block["event"], block["id"], "\n".join(block["data"]), block["comments"], time.monotonic()
                        )
                    )
                    block = {"event": "", "id": None, "data": [], "comments": []}
                elif line.startswith(":"):
                    block["comments"].append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        block["data"].append(value)
                    elif name == "id":
                        block["id"] = int(value)
                    elif name == "event":
                        block["event"] = value
        except httpx.HTTPError:
            pass  # closed by the test
        finally:
            self._open.set()

    def events(self, count: int, timeout: float = 10.0) -> list[tuple[Message, dict]]:
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(found)} of {count} events within {timeout} s")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if message.event == "event":
                found.append((message, json.loads(message.data)))
        return found

    def next_message(self, timeout: float, kind: str | None = None) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if kind is None or message.event == kind:
                return message


def event(event_type: str = "tail_test", distinct_id: str = "tail-user", **properties) -> dict:
    return {"event_type": event_type, "distinct_id": distinct_id, "uuid": str(uuid.uuid4()), "properties": properties}


@pytest.fixture(scope="module")
def tail_server(database_url) -> Iterator[RunningServer]:
    settings = settings_for(
        database_url, stream_poll_seconds=0.05, stream_heartbeat_seconds=0.5, stream_send_timeout_seconds=1.0
    )
    with RunningServer(settings) as running:
        yield running


@pytest.fixture
def key(tail_server, db, database_url) -> str:
    _, key = create_admin_key(database_url, "tail")
    wait_until(
        lambda: (
            httpx.get(f"{tail_server.url}{DESTINATIONS}", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        )
    )
    return key


def test_two_workers_an_event_appears_within_a_second_and_concurrent_writers_skip_nothing(database_url, db):
    """API_WORKERS=2: the stream is served by one worker, the captures land on both (a new connection each)."""
    _, key = create_admin_key(database_url, "tail-2")
    with api_process(database_url, API_WORKERS="2", STREAM_POLL_SECONDS="0.1") as (_, base):
        wait_until(
            lambda: httpx.get(f"{base}{DESTINATIONS}", headers={"Authorization": f"Bearer {key}"}).status_code == 200,
            timeout=10,
        )
        with Tail(base, key) as tail:
            stream_worker = tail.headers["x-request-id"][:16]  # the request id's first half is per process
            delays, other_worker = [], 0
            for _ in range(30):
                sent = event()
                answer = httpx.post(f"{base}{CAPTURE}", json=sent, headers={"Connection": "close"})
                assert answer.status_code == 200
                acked = time.monotonic()
                other_worker += answer.headers["x-request-id"][:16] != stream_worker
                [(message, seen)] = tail.events(1, timeout=5)
                assert seen["uuid"] == sent["uuid"]
                delays.append(message.at - acked)
            assert other_worker >= 3, "no capture reached the other worker: the test proves nothing"
            assert max(delays) < 1.0, sorted(delays)[-5:]

            # Concurrent writers on both workers (each with two sink connections) commit out of seq order.
            sent_uuids: set[str] = set()
            lock = threading.Lock()

            def post(i: int) -> None:
                batch = [event(distinct_id=f"w{i}") for _ in range(random.randint(1, 40))]
                with httpx.Client(base_url=base) as client:
                    for _ in range(8):
                        assert client.post(BATCH, json={"batch": batch}).status_code == 200
                        with lock:
                            sent_uuids.update(e["uuid"] for e in batch)
                        batch = [event(distinct_id=f"w{i}") for _ in range(random.randint(1, 40))]

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(post, range(8)))
            seen = tail.events(len(sent_uuids), timeout=20)
            seqs = [m.id for m, _ in seen]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            assert {e["uuid"] for _, e in seen} == sent_uuids
            stored = db.execute("SELECT count(*) FROM events WHERE uuid = ANY(%s)", (list(sent_uuids),)).fetchone()[0]
            assert stored == len(sent_uuids)


def test_resuming_with_last_event_id_neither_skips_nor_repeats(tail_server, key, db):
    base = tail_server.url
    with Tail(base, key) as tail:
        first = [event() for _ in range(5)]
        assert httpx.post(f"{base}{BATCH}", json={"batch": first}).status_code == 200
        got = tail.events(5)
        last_id = got[-1][0].id
    # Disconnected: these arrive while nobody listens.
    missed = [event() for _ in range(7)]
    for e in missed:
        assert httpx.post(f"{base}{CAPTURE}", json=e).status_code == 200
    with Tail(base, key, params={"after": 0}, last_event_id=last_id) as tail:  # the header wins over ?after=
        got = tail.events(7)
        assert [e["uuid"] for _, e in got] == [e["uuid"] for e in missed]
        later = event()
        assert httpx.post(f"{base}{CAPTURE}", json=later).status_code == 200
        [(_, seen)] = tail.events(1)
        assert seen["uuid"] == later["uuid"]
        with pytest.raises(queue.Empty):  # nothing repeated after it
            tail.next_message(0.5, kind="event")
    with Tail(base, key, params={"after": got[0][0].id - 1}) as tail:  # ?after= alone
        assert [e["uuid"] for _, e in tail.events(8)] == [e["uuid"] for e in missed] + [later["uuid"]]


def test_filters_heartbeats_and_the_event_body(tail_server, key, db):
    base = tail_server.url
    params = {"event_type": ["purchase", "refund"], "filter": "properties.plan=pro"}
    with Tail(base, key, params=params) as tail:
        batch = [
            event("purchase", plan="pro", amount=3),
            event("purchase", plan="free"),
            event("app_open", plan="pro"),
            event("refund", "other-user", plan="pro"),
        ]
        assert httpx.post(f"{base}{BATCH}", json={"batch": batch}).status_code == 200
        got = tail.events(2)
        assert [e["uuid"] for _, e in got] == [batch[0]["uuid"], batch[3]["uuid"]]
        body = got[0][1]
        assert body["event"] == "purchase" and body["distinct_id"] == "tail-user"
        assert body["properties"] == {"plan": "pro", "amount": 3}
        assert body["seq"] == got[0][0].id and body["received_at"].endswith("Z")
        heartbeat = tail.next_message(3)
        assert "heartbeat" in heartbeat.comments
        with pytest.raises(queue.Empty):
            tail.next_message(0.3, kind="event")
    with Tail(base, key, params={"distinct_id": "other-user", "after": got[0][0].id - 1}) as tail:
        assert [e["uuid"] for _, e in tail.events(1)] == [batch[3]["uuid"]]


def test_bad_parameters_are_refused_with_the_error_body(tail_server, key):
    headers = {"Authorization": f"Bearer {key}"}
    for params, field in (
        ({"after": "-1"}, "after"),
        ({"after": "abc"}, "after"),
        ({"filter": "plan=pro"}, "filter"),
        ({"since": "1"}, "since"),
    ):
        answer = httpx.get(f"{tail_server.url}{STREAM}", params=params, headers=headers)
        assert answer.status_code == 400, params
        assert answer.json()["error"] == "invalid_parameter" and field in answer.json()["fields"]
    answer = httpx.get(f"{tail_server.url}{STREAM}", headers={**headers, "Last-Event-ID": "x"})
    assert answer.status_code == 400 and "Last-Event-ID" in answer.json()["fields"]
    assert httpx.get(f"{tail_server.url}{STREAM}").status_code == 401
    head = httpx.head(f"{tail_server.url}{STREAM}", headers=headers, timeout=5)  # answered, not left streaming
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")


def test_a_client_that_stops_reading_is_cut_off(tail_server, key, db, database_url):
    """20,000 events behind its cursor and a receive buffer it never empties: the server's writes block, and
    after STREAM_SEND_TIMEOUT_SECONDS (1 s here) the stream is closed instead of waiting or buffering."""
    before = db.execute("SELECT coalesce(max(ingest_seq), 0) FROM events").fetchone()[0]
    db.execute(
        'INSERT INTO events (uuid, event_type, distinct_id, properties, "timestamp", received_at)'
        " SELECT gen_random_uuid(), 'bulk', 'u' || g, jsonb_build_object('pad', repeat('x', 200)), now(), now()"
        " FROM generate_series(1, 20000) g"
    )
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", tail_server.port))
    slow.sendall(f"GET {STREAM}?after={before} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
    metrics = f"{tail_server.url}/metrics"

    def cut_off() -> bool:
        text = httpx.get(metrics).text
        line = next(x for x in text.splitlines() if x.startswith("eventtrack_stream_slow_consumers_total"))
        return float(line.split()[-1]) >= 1

    wait_until(cut_off, timeout=15)
    slow.settimeout(10)
    received = b""
    try:
        while chunk := slow.recv(1 << 20):
            received += chunk
    except OSError:
        pass
    slow.close()
    assert b"id: " in received  # it had begun streaming
    assert received.count(b"event: event") < 20000  # and was cut off before the end
