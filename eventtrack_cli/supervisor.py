"""What keeps `eventtrack up`'s services running: a child that dies is restarted, Ctrl-C stops them all.

The `Supervisor` polls its children (the API, the Dagster webserver and daemon, and the
embedded Postgres, watched through its postmaster's pid). A child that is gone is logged
and started again after a `Backoff` delay: doubling from the first delay up to a cap,
and back to the first once the child had stayed up a while. The policy is pure; the
children are the only part that touches processes.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from eventtrack.embedded_postgres import EmbeddedPostgres

log = logging.getLogger("eventtrack.supervisor")

# A child that stayed up this long was healthy: its next restart waits the first delay again.
STABLE_AFTER_SECONDS = 60.0


@dataclass
class Backoff:
    """How long to wait before restarting a child that exited (or failed to start)."""

    first: float
    maximum: float
    stable_after: float = STABLE_AFTER_SECONDS
    failures: int = 0  # exits in a row, each after less than `stable_after` up

    def delay(self, uptime: float) -> float:
        """The wait before the next start, for a child that ran `uptime` seconds (0: it did not start)."""
        if uptime >= self.stable_after:
            self.failures = 0
        delay = min(self.maximum, self.first * 2 ** min(self.failures, 32))
        self.failures += 1
        return delay


class Child(Protocol):
    name: str
    pid: int | None  # for the log

    def start(self) -> None:
        """Starts the child; raises when it could not."""

    def exit_reason(self) -> str | None:
        """None while the child runs; otherwise why it is gone."""

    def clean_up(self) -> None:
        """After an exit: removes what the child left behind, before it is started again."""

    def terminate(self) -> None:
        """Asks the child to stop (Ctrl-C)."""

    def wait(self, deadline: float) -> None:
        """Waits for the child to stop until `deadline` (time.monotonic()), then kills it."""


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


class ProcessChild:
    """A command run in its own process group: Ctrl-C reaches `eventtrack up` alone, which stops the
    children in order, and what a dead child leaves behind (its own subprocesses) can be killed with it."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path):
        self.name = name
        self._command = command
        self._env = env
        self._cwd = cwd
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        self._process = subprocess.Popen(self._command, env=self._env, cwd=self._cwd, start_new_session=True)

    def exit_reason(self) -> str | None:
        if self._process is None or self._process.poll() is None:
            return None
        return describe_exit(self._process.returncode)

    def clean_up(self) -> None:
        self._signal_group(signal.SIGKILL)

    def terminate(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._signal_group(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        if self._process is None:
            return
        try:
            self._process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", self.name)
        self._signal_group(signal.SIGKILL)  # the child if still there, and whatever it started
        self._process.wait()

    def _signal_group(self, signum: int) -> None:
        assert self._process is not None
        try:
            os.killpg(self._process.pid, signum)
        except ProcessLookupError:  # nobody left in the group
            pass


class PostgresChild:
    """The embedded Postgres: started before the supervisor, watched through its postmaster's pid,
    started again when that is gone. Stopping it stays with whoever started it first (after the others)."""

    name = "postgres"

    def __init__(self, server: EmbeddedPostgres):
        self._server = server
        self.pid: int | None = None

    def start(self) -> None:
        if self._server.postmaster_pid() is None:
            self._server.restart()
        self.pid = self._server.postmaster_pid()

    def exit_reason(self) -> str | None:
        if self._server.postmaster_pid() is not None:
            return None
        return f"stopped (postmaster pid {self.pid} gone)"

    def clean_up(self) -> None:
        pass  # a postmaster's backends exit by themselves when it dies

    def terminate(self) -> None:
        pass

    def wait(self, deadline: float) -> None:
        pass


@dataclass
class _Watch:
    backoff: Backoff
    started_at: float = 0.0
    restart_at: float | None = None  # set while the child is down


@dataclass
class Supervisor:
    children: list[Child]
    backoff: Callable[[], Backoff]
    clock: Callable[[], float] = time.monotonic
    # Until the services first answer, an exit is reported as a failure to start.
    starting: bool = True
    _watches: dict[str, _Watch] = field(default_factory=dict)

    def start(self) -> None:
        """Starts every child, in order."""
        for child in self.children:
            child.start()
            self._watches[child.name] = _Watch(self.backoff(), started_at=self.clock())

    def poll(self) -> None:
        """Notices children that are gone and starts those whose delay has passed."""
        for child in self.children:
            watch = self._watches[child.name]
            now = self.clock()
            if watch.restart_at is None:
                reason = child.exit_reason()
                if reason is None:
                    continue
                uptime = now - watch.started_at
                delay = watch.backoff.delay(uptime)
                child.clean_up()
                watch.restart_at = now + delay
                when = "while starting" if self.starting else f"after {uptime:.1f} s"
                log.warning("%s %s %s; restarting it in %.1f s", child.name, reason, when, delay)
            elif now >= watch.restart_at:
                try:
                    child.start()
                except (OSError, RuntimeError, subprocess.SubprocessError) as exc:  # e.g. Postgres not ready yet
                    delay = watch.backoff.delay(0.0)
                    watch.restart_at = now + delay
                    log.warning("%s did not start (%s); next attempt in %.1f s", child.name, exc, delay)
                    continue
                watch.restart_at = None
                watch.started_at = now
                log.info("%s restarted (pid %s)", child.name, child.pid)

    def wait_until_answering(
        self,
        probes: dict[str, Callable[[], bool]],
        stopping: threading.Event,
        say: Callable[[str], None],
        poll_seconds: float = 0.2,
        remind_seconds: float = 15.0,
    ) -> bool:
        """Supervises until every probe (a description and whether it answers) answered once.

        Says what it waits for, then again every `remind_seconds`. False when `stopping` came first.
        """
        waiting = dict(probes)
        began = last_said = self.clock()
        say(f"waiting for {_and(list(waiting))} to answer")
        while waiting:
            if stopping.wait(poll_seconds):
                return False
            self.poll()
            waiting = {what: answers for what, answers in waiting.items() if not answers()}
            if waiting and self.clock() - last_said >= remind_seconds:
                last_said = self.clock()
                say(f"still waiting for {_and(list(waiting))} ({last_said - began:.0f} s)")
        self.starting = False
        return True

    def run(self, stopping: threading.Event, poll_seconds: float = 0.2) -> None:
        """Supervises until `stopping` is set."""
        while not stopping.wait(poll_seconds):
            self.poll()

    def stop(self, timeout: float = 20.0) -> None:
        """Stops every child, the last started first; kills what still runs after `timeout` seconds."""
        for child in reversed(self.children):
            child.terminate()
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            child.wait(deadline)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# Straight to the service, whatever HTTP(S)_PROXY says (urllib, unlike httpx, logs no line per probe).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a GET of `url` answers 200 now."""
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # refused, timed out, an error status (HTTPError)
        return False
