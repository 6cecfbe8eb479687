"""`eventtrack demo`: a realistic stream of mobile events over the last days, sent through the real HTTP API.

Users on iOS and Android with several app versions open the app, browse, buy,
start and end sessions; some phones have clocks hours off (fixed by sent_at),
some come back online with days-old events, and some batches are sent twice
(deduplicated by uuid). Generation is pure and seeded (`plan_demo`); sending is
a thin HTTP loop (`send_demo`).
"""

from __future__ import annotations

import random
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO

import httpx

APP_VERSIONS = {"iOS": ["3.0.0", "3.1.0", "3.2.0"], "Android": ["3.0.0", "3.1.2", "3.2.0"]}
OS_VERSIONS = {"iOS": ["17.6", "18.1", "18.2"], "Android": ["13", "14", "15"]}
SCREENS = ["home", "search", "item", "cart", "profile", "settings"]


@dataclass
class DemoSession:
    session_id: str
    distinct_id: str
    device_id: str
    app_version: str
    os_name: str
    os_version: str
    started_at: datetime
    ended_at: datetime | None  # None: the app never said (the pipeline closes it on timeout)
    events: list[dict] = field(default_factory=list)
    clock_offset: timedelta = timedelta(0)  # how wrong the phone's clock is
    offline: bool = False  # sent days later, when the phone is back online
    resend: bool = False  # the batch is sent twice (a retry after a timeout)


def plan_demo(users: int, days: int, now: datetime, seed: int = 42) -> list[DemoSession]:
    rng = random.Random(seed)
    sessions: list[DemoSession] = []
    for n in range(users):
        os_name = rng.choice(["iOS", "iOS", "Android"])
        distinct_id = f"user-{n:04d}"
        device_id = str(uuid.UUID(int=rng.getrandbits(128)))
        version_index = rng.randrange(3)
        clock_offset = timedelta(hours=rng.choice([0, 0, 0, 0, 2, -3]))
        # A quarter of the users leave during the period, coming back less and less before they do: churn
        # the churn model can learn from with a long enough demo (docs/analytics.md "Churn risk").
        leaves_after = rng.uniform(0.2, 0.9) * days * 86400 if rng.random() < 0.25 else None
        for _ in range(rng.randrange(1, 3 * days + 1)):
            if leaves_after is None:
                started = now - timedelta(seconds=rng.randrange(days * 86400))
            else:
                started = now - timedelta(days=days) + timedelta(seconds=rng.triangular(0, leaves_after, 0))
            if rng.random() < 0.1 and version_index < 2:  # users update the app now and then
                version_index += 1
            session = DemoSession(
                session_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                distinct_id=distinct_id,
                device_id=device_id,
                app_version=APP_VERSIONS[os_name][version_index],
                os_name=os_name,
                os_version=rng.choice(OS_VERSIONS[os_name]),
                started_at=started,
                ended_at=None,
                clock_offset=clock_offset,
                offline=rng.random() < 0.05,
                resend=rng.random() < 0.05,
            )
            at = started
            session.events.append(_event(rng, session, "app_open", at, {}))
            for _ in range(rng.randrange(1, 15)):
                at += timedelta(seconds=rng.randrange(5, 240))
                if at > now:  # the session is still going on
                    break
                screen = rng.choice(SCREENS)
                session.events.append(_event(rng, session, "screen_view", at, {"screen": screen}))
                if screen == "item" and rng.random() < 0.5:
                    session.events.append(
                        _event(rng, session, "item_viewed", at, {"item_id": f"sku-{rng.randrange(50)}"})
                    )
                if screen == "cart" and rng.random() < 0.3:
                    amount = round(rng.uniform(2, 120), 2)
                    session.events.append(
                        _event(rng, session, "purchase_completed", at, {"amount": amount, "currency": "EUR"})
                    )
            if at < now and rng.random() < 0.7:
                session.ended_at = min(at + timedelta(seconds=rng.randrange(1, 60)), now)
            sessions.append(session)
    sessions.sort(key=lambda s: s.started_at)
    return [s for s in sessions if s.started_at < now]


def _event(rng: random.Random, session: DemoSession, event_type: str, at: datetime, properties: dict) -> dict:
    return {
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "distinct_id": session.distinct_id,
        "event_type": event_type,
        "session_id": session.session_id,
        "device_id": session.device_id,
        "app_version": session.app_version,
        "os_name": session.os_name,
        "os_version": session.os_version,
        # As the phone's clock says it.
        "timestamp": (at + session.clock_offset).isoformat(),
        "properties": properties,
    }


def _requests(session: DemoSession, now: datetime) -> Iterator[tuple[str, str, dict]]:
    """(method, path, body) in the order the app sends them."""
    phone_now = (now + session.clock_offset).isoformat()
    yield (
        "POST",
        "/api/v1/analytics/session/start/",
        {
            "session_id": session.session_id,
            "distinct_id": session.distinct_id,
            "device_id": session.device_id,
            "app_version": session.app_version,
            "os_name": session.os_name,
            "os_version": session.os_version,
            "started_at": (session.started_at + session.clock_offset).isoformat(),
            "sent_at": phone_now,
        },
    )
    batch = {"events": session.events, "sent_at": phone_now}
    if batch["events"]:
        yield "POST", "/api/v1/analytics/batch/", batch
        if session.resend:
            yield "POST", "/api/v1/analytics/batch/", batch
    if session.ended_at is not None:
        yield (
            "PUT",
            f"/api/v1/analytics/session/{session.session_id}/end/",
            {
                "ended_at": (session.ended_at + session.clock_offset).isoformat(),
                "sent_at": phone_now,
            },
        )


@dataclass
class DemoResult:
    """What sending the demo came to; failed requests counted by status and error code."""

    requests: int = 0
    events: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # e.g. "401 invalid_api_key" -> 12

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def summary(self) -> str:
        """`12 failed: 401 invalid_api_key ×12`, or `0 failed`."""
        if not self.failures:
            return "0 failed"
        return f"{self.failed} failed: " + ", ".join(f"{kind} ×{n}" for kind, n in self.failures.most_common())


def send_demo(
    base_url: str, sessions: list[DemoSession], now: datetime, write_key: str | None = None, out: TextIO = sys.stderr
) -> DemoResult:
    """Sends every session through the API (with the project write key, when given) and counts the answers.

    Raises httpx.TransportError when the API cannot be reached.
    """
    requests = [r for s in sorted(sessions, key=lambda s: s.offline) for r in _requests(s, now)]  # offline phones last
    result = DemoResult()
    progress = Progress(out, len(requests))
    headers = {"X-API-Key": write_key} if write_key else {}
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
        for method, path, body in requests:
            response = client.request(method, path, json=body)
            result.requests += 1
            if response.status_code >= 400:
                result.failures[_failure_kind(response)] += 1
            elif path.endswith("/batch/"):
                result.events += response.json()["accepted"]
            progress.update(result.requests, result.failed)
    progress.close()
    return result


def _failure_kind(response: httpx.Response) -> str:
    """`401 invalid_api_key`: the status and the error code of the API's JSON error body (when it has one)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):  # not JSON, or not an object (e.g. a proxy's HTML page)
        error = None
    return f"{response.status_code} {error}" if isinstance(error, str) else str(response.status_code)


class Progress:
    """One line redrawn in place on a terminal; a plain line every tenth of the way otherwise (logs, CI)."""

    def __init__(self, out: TextIO, total: int, width: int = 40):
        self.out, self.total, self.width = out, total, width
        self.tty = out.isatty()
        self.step = 25 if self.tty else max(1, -(-total // 10))  # at most ten lines

    def update(self, done: int, failed: int) -> None:
        if done != self.total and done % self.step:
            return
        failures = f" ({failed} failed)" if failed else ""
        if self.tty:
            filled = self.width * done // self.total
            self.out.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} requests{failures}")
        else:
            self.out.write(f"demo: {done}/{self.total} requests sent{failures}\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def run_demo(base_url: str, users: int, days: int, write_key: str | None = None) -> DemoResult:
    now = datetime.now(UTC)
    return send_demo(base_url, plan_demo(users, days, now), now, write_key=write_key)
