"""The restart policy of `eventtrack up` (eventtrack_cli/supervisor.py) on fake children and a fake clock."""

from __future__ import annotations

import logging
import threading

from eventtrack_cli.supervisor import Backoff, Supervisor, describe_exit


def test_backoff_doubles_up_to_the_cap_and_starts_over_after_a_stable_run():
    backoff = Backoff(first=1.0, maximum=10.0, stable_after=60.0)
    assert [backoff.delay(uptime=2.0) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.delay(uptime=60.0) == 1.0  # it had stayed up a minute: healthy again
    assert backoff.delay(uptime=0.5) == 2.0


def test_backoff_never_overflows():
    backoff = Backoff(first=0.5, maximum=30.0)
    assert all(backoff.delay(uptime=0.0) <= 30.0 for _ in range(5000))


def test_exits_are_described_by_code_or_signal():
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "was killed by SIGKILL"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeChild:
    def __init__(self, name: str, events: list[str], fail_starts: int = 0):
        self.name = name
        self.pid: int | None = None
        self.running = False
        self.starts = 0
        self.cleaned = 0
        self.fail_starts = fail_starts
        self.events = events

    def start(self) -> None:
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("not yet")
        self.starts += 1
        self.pid = 1000 + self.starts
        self.running = True

    def exit_reason(self) -> str | None:
        return None if self.running else "exited with code 1"

    def clean_up(self) -> None:
        self.cleaned += 1

    def terminate(self) -> None:
        self.events.append(f"terminate {self.name}")

    def wait(self, deadline: float) -> None:
        self.events.append(f"wait {self.name}")
        self.running = False


def supervisor_of(*children: FakeChild, clock: Clock) -> Supervisor:
    return Supervisor(list(children), lambda: Backoff(first=1.0, maximum=4.0, stable_after=60.0), clock=clock)


def test_a_dead_child_is_restarted_after_the_backoff_and_its_leftovers_cleaned(caplog):
    clock, events = Clock(), []
    api, daemon = FakeChild("api", events), FakeChild("daemon", events)
    supervisor = supervisor_of(api, daemon, clock=clock)
    supervisor.start()
    supervisor.starting = False
    caplog.set_level(logging.INFO, logger="eventtrack.supervisor")

    clock.now += 5
    api.running = False
    supervisor.poll()
    assert api.cleaned == 1 and api.starts == 1, "restarted before its delay"
    assert "api exited with code 1 after 5.0 s; restarting it in 1.0 s" in caplog.text
    clock.now += 0.9
    supervisor.poll()
    assert api.starts == 1
    clock.now += 0.1
    supervisor.poll()
    assert api.starts == 2 and api.running
    assert "api restarted (pid 1002)" in caplog.text
    assert daemon.starts == 1, "a healthy child was touched"

    # Dying again at once doubles the delay, up to the cap.
    delays = []
    for _ in range(4):
        api.running = False
        supervisor.poll()
        began = clock.now
        while not api.running:
            clock.now += 0.5
            supervisor.poll()
        delays.append(clock.now - began)
    assert delays == [2.0, 4.0, 4.0, 4.0]

    # After a minute up, the first delay again.
    clock.now += 60
    api.running = False
    supervisor.poll()
    clock.now += 1.0
    supervisor.poll()
    assert api.running


def test_a_start_that_fails_is_tried_again_later(caplog):
    clock = Clock()
    postgres = FakeChild("postgres", [], fail_starts=0)
    supervisor = supervisor_of(postgres, clock=clock)
    supervisor.start()
    postgres.running, postgres.fail_starts = False, 2
    supervisor.poll()
    assert "postgres exited with code 1 while starting" in caplog.text
    for step in (1.0, 2.0):
        clock.now += step
        supervisor.poll()
        assert not postgres.running
    assert caplog.text.count("postgres did not start (not yet)") == 2
    clock.now += 4.0
    supervisor.poll()
    assert postgres.running


def test_stop_stops_the_last_started_first():
    events = []
    supervisor = supervisor_of(
        FakeChild("postgres", events), FakeChild("api", events), FakeChild("daemon", events), clock=Clock()
    )
    supervisor.start()
    supervisor.stop()
    assert events == [
        "terminate daemon",
        "terminate api",
        "terminate postgres",
        "wait daemon",
        "wait api",
        "wait postgres",
    ]


def test_waiting_says_what_it_waits_for_and_reports_a_death_while_starting(caplog):
    clock = Clock()
    webserver = FakeChild("dagster-webserver", [])
    supervisor = supervisor_of(webserver, clock=clock)
    supervisor.start()
    answered = {"api": False, "ui": False}
    said = []
    polls = iter(range(1000))

    def tick() -> bool:
        n = next(polls)
        clock.now += 5
        if n == 1:
            webserver.running = False
        answered["api"] = n >= 2
        answered["ui"] = n >= 6
        return False

    stopping = threading.Event()
    stopping.wait = lambda timeout: tick()  # type: ignore[method-assign]
    probes = {"the API": lambda: answered["api"], "the Dagster UI": lambda: answered["ui"]}
    assert supervisor.wait_until_answering(probes, stopping, said.append, remind_seconds=15)
    assert said[0] == "waiting for the API and the Dagster UI to answer"
    assert said[1:] == ["still waiting for the Dagster UI (15 s)", "still waiting for the Dagster UI (30 s)"]
    assert "dagster-webserver exited with code 1 while starting; restarting it in 1.0 s" in caplog.text
    assert webserver.starts == 2 and not supervisor.starting


def test_waiting_ends_without_answer_on_ctrl_c():
    supervisor = supervisor_of(FakeChild("api", []), clock=Clock())
    supervisor.start()
    stopping = threading.Event()
    stopping.set()
    assert not supervisor.wait_until_answering({"the API": lambda: False}, stopping, lambda line: None)
