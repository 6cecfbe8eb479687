"""py-spy over the real service under the ingest benchmark's wrk load: where a request's time goes.

    .venv/bin/python -m bench.profile_ingest single|batch [seconds]

Starts a throwaway embedded Postgres and the service as `make bench` does, runs wrk for the given time
(default 15 s) with `py-spy record` attached to the service, and prints the functions with the most samples
(own and cumulative); the raw profile is written next to bench/results/ as speedscope JSON. py-spy is not a
dependency of the project: install it with `pip install py-spy` (it needs ptrace, i.e. root or the
capability).
"""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import RESULTS_DIR, log, serving, throwaway_postgres
from bench.run_ingest import BATCH_PATH, CAPTURE_PATH, run_wrk, write_templates
from eventtrack.migrate import migrate


def _summarize(profile: dict, top: int = 40) -> str:
    frames = profile["shared"]["frames"]
    own: collections.Counter = collections.Counter()
    cumulative: collections.Counter = collections.Counter()
    total = 0
    # By function (py-spy's frames are per line).
    keys = [(f["name"], Path(f.get("file", "?")).name) for f in frames]
    for prof in profile["profiles"]:
        for sample, weight in zip(prof["samples"], prof["weights"]):
            total += weight
            if sample:
                own[keys[sample[-1]]] += weight
            for key in {keys[i] for i in sample}:
                cumulative[key] += weight

    def name(key: tuple[str, str]) -> str:
        return f"{key[0]} ({key[1]})"

    lines = [f"{total:.1f} s sampled", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name(i)}" for i, n in own.most_common(top)]
    lines += ["", "cumulative:"]
    lines += [f"  {100 * n / total:5.1f}%  {name(i)}" for i, n in cumulative.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    kind = sys.argv[1] if len(sys.argv) > 1 else "single"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    if shutil.which("py-spy") is None or shutil.which("wrk") is None:
        print("needs py-spy (pip install py-spy) and wrk (make bench installs it)", file=sys.stderr)
        return 2
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"profile-{kind}.speedscope.json"
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="etb-prof-", dir="/tmp"))
        stack.callback(shutil.rmtree, workdir, True)
        pg = stack.enter_context(throwaway_postgres())
        url = pg.url()
        migrate(url, 90, 7)
        single_tpl, batch_tpl, _ = write_templates(workdir, datetime.now(UTC))
        service = stack.enter_context(serving("service", "ingest_api.asgi:app", url, workdir))
        path, template = (CAPTURE_PATH, single_tpl) if kind == "single" else (BATCH_PATH, batch_tpl)
        run_wrk(service.url + path, template, 3, 1)  # warm-up
        spy = subprocess.Popen(
            [
                "py-spy",
                "record",
                "--pid",
                str(service.pgid),
                "--rate",
                "500",
                "--format",
                "speedscope",
                "--output",
                str(out),
                "--duration",
                str(seconds),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        stats: dict = {}
        worker = threading.Thread(target=lambda: stats.update(run_wrk(service.url + path, template, seconds, 2)))
        worker.start()
        worker.join()
        spy.wait(timeout=60)
        log(f"wrk: {stats['requests']} answers in {stats['duration_us'] / 1e6:.1f} s")
    print(_summarize(json.loads(out.read_text())))
    log(f"profile: {out} (open it in https://www.speedscope.app)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
