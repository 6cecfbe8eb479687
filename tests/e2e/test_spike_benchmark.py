"""The spike benchmark's machinery (bench/run_spike.py) at a tiny scale, against a real server whose queue is
small enough that the spike is refused in part: the simulated SDK clients and the server's backpressure
together store every event exactly once, every refusal is a 503 with Retry-After, and the clients wait it out."""

from __future__ import annotations

import asyncio

from bench.run_spike import RETRY_POLICIES, Spike, check_exactly_once
from tests.conftest import RunningServer, settings_for


def test_a_small_spike_is_stored_exactly_once_and_every_refusal_is_waited_out(database_url, db):
    settings = settings_for(database_url, max_queued_rows=200, retry_after_seconds=1)
    with RunningServer(settings) as server:
        spike = Spike(
            "127.0.0.1",
            server.port,
            rate=10_000,
            seconds=1.5,
            clients=20,
            batch=100,
            policy=RETRY_POLICIES["android"],
            drain_limit=60,
        )
        asyncio.run(spike.run())
    tally = spike.tally
    assert spike.drained
    assert tally.created == sum(c.total for c in spike.sdk_clients) > 14_000
    assert set(tally.statuses) == {"200", "503"}, tally.statuses  # refused in part, and nothing else went wrong
    assert tally.unexpected == []
    # Every 503 carried Retry-After (else it would be in `unexpected`), and its batch was sent again no sooner.
    assert tally.retries_honoured == tally.statuses["503"]
    assert tally.shortest_wait_over_retry_after >= 0
    assert tally.acked == tally.created
    verification = check_exactly_once(database_url, spike)
    assert verification["ok"], verification
