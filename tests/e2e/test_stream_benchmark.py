"""The streaming benchmark's latency phase (bench/run_stream.py) at a tiny scale: its open-loop capture client,
its receiver (bench/stream_receiver.py, its own uvicorn process) and a real delivery worker process, against
the shared test server. Every acked event is found delivered, signed, and its latency and the processes' CPU
time are measured."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from bench import harness
from bench.run_ingest import write_templates
from bench.run_stream import SECRET, Admin, latency_phase
from eventtrack.streaming import deliver_command

FAST = {"STREAM_POLL_SECONDS": "0.05", "DELIVERY_SCAN_SECONDS": "0.2"}


def test_the_latency_phase_finds_every_acked_event_delivered_and_times_it(
    server, db, database_url, embedded_pg, tmp_path
):
    _, _, events = write_templates(tmp_path, datetime.now(UTC))
    receiver_env = {"STREAM_RECEIVER_LOG": str(tmp_path / "received.log"), "STREAM_RECEIVER_SECRET": SECRET}
    worker = harness.Process(
        "worker", deliver_command(), {**os.environ, "DATABASE_URL": database_url, **FAST}, tmp_path
    )
    with (
        harness.serving("receiver", "bench.stream_receiver:app", database_url, tmp_path, receiver_env) as receiver,
        harness.running(worker),
    ):
        meter = harness.CpuMeter(
            None, harness.postmaster_pid(embedded_pg.pgdata), worker=worker.pgid, receiver=receiver.pgid
        )
        admin = Admin(server.url, database_url)
        result = latency_phase(
            database_url, server.port, receiver, worker, admin, events, meter, rate=1000, seconds=2, per_request=20
        )
        admin.client.close()

    assert result["answers"] == {"200": 100}
    assert result["acked_events"] == result["delivered_acked_events"] == 2000
    assert result["never_delivered"] == 0 and result["delivered_but_not_acked"] == 0
    assert result["bad_signatures"] == 0 and result["deliveries"] >= 20  # batches of at most 100
    latency = result["latency_s"]
    assert latency["min"] <= latency["p50"] <= latency["p99"] <= latency["max"] < 30
    assert result["cpu_us_per_event"]["worker"] > 0 and result["cpu_us_per_event"]["receiver"] > 0
    assert db.execute("SELECT count(*) FROM destinations").fetchone()[0] == 0  # deleted after the phase
