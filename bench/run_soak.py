"""`make bench-soak`: the ingest service under the batch benchmark's load for 5 minutes, RSS sampled.

The promise checked: memory stays flat (the write queue is bounded; nothing
grows per request). Prints the RSS curve and writes bench/results/soak.json.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import (
    RESULTS_DIR,
    BenchFailure,
    count_events,
    env_int,
    group_rss_mib,
    log,
    machine_info,
    serving,
    throwaway_postgres,
)
from bench.run_ingest import BATCH_PATH, BATCH_SIZE, CONNECTIONS, run_wrk, write_templates
from eventtrack.migrate import migrate

SOAK_SECONDS = env_int("SOAK_SECONDS", 300)
SAMPLE_SECONDS = env_int("SOAK_SAMPLE_SECONDS", 5)
# Flat: the RSS of the last minute stays within this factor of the first minute's (after warm-up).
MAX_GROWTH = 1.10


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="etsoak-"))
    try:
        with throwaway_postgres() as pg:
            url = pg.url()
            migrate(url, 90, 7)
            _, batch_template, _ = write_templates(workdir, datetime.now(UTC))
            with serving("eventtrack", "ingest_api.asgi:app", url, workdir) as server:
                samples: list[tuple[float, float]] = []
                stop = threading.Event()
                began = time.monotonic()

                def sample() -> None:
                    while not stop.is_set():
                        samples.append((round(time.monotonic() - began, 1), round(group_rss_mib(server.pgid), 1)))
                        stop.wait(SAMPLE_SECONDS)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                log(f"soak: {SOAK_SECONDS} s of batches of {BATCH_SIZE} at {CONNECTIONS} connections")
                stats = run_wrk(server.url + BATCH_PATH, batch_template, SOAK_SECONDS, seed=7)
                stop.set()
                sampler.join()
                samples.append((round(time.monotonic() - began, 1), round(group_rss_mib(server.pgid), 1)))
            stored = count_events(url)
            machine = machine_info(url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ok = stats["requests"] - stats["errors"]["status"]
    expected = ok * BATCH_SIZE
    if stored < expected:
        raise BenchFailure(f"{expected - stored} acknowledged events missing after the soak")
    first = [rss for t, rss in samples if 30 <= t < 90] or [samples[0][1]]
    last = [rss for t, rss in samples if t >= samples[-1][0] - 60]
    first_avg, last_avg = sum(first) / len(first), sum(last) / len(last)
    growth = last_avg / first_avg
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "config": {
            "seconds": SOAK_SECONDS,
            "connections": CONNECTIONS,
            "batch_size": BATCH_SIZE,
            "sample_seconds": SAMPLE_SECONDS,
        },
        "requests_ok": ok,
        "non_2xx": stats["errors"]["status"],
        "events_per_s": round(ok * BATCH_SIZE / SOAK_SECONDS, 1),
        "events_stored": stored,
        "rss_mib_samples": samples,
        "rss_first_minute_mib": round(first_avg, 1),
        "rss_last_minute_mib": round(last_avg, 1),
        "rss_growth": round(growth, 3),
        "flat": growth <= MAX_GROWTH,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "soak.json").write_text(json.dumps(result, indent=2))
    curve = "  ".join(f"{int(t)}s:{rss:.0f}" for t, rss in samples[:: max(1, len(samples) // 20)])
    print(
        f"\nsoak {SOAK_SECONDS} s: {result['events_per_s']} events/s, {ok} batches acknowledged, {stored} events stored"
    )
    print(f"RSS MiB over time: {curve}")
    print(
        f"RSS first minute {first_avg:.1f} MiB, last minute {last_avg:.1f} MiB, growth x{growth:.3f} "
        f"({'flat' if result['flat'] else 'GROWING'}; limit x{MAX_GROWTH})"
    )
    return 0 if result["flat"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
