"""What the benchmarks share: a throwaway Postgres, the API started as `eventtrack api` starts it, and /proc sampling.

Each `bench/run_*.py` is one benchmark; the pieces several of them need live here.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import psycopg

from eventtrack.embedded_postgres import EmbeddedPostgres
from eventtrack.settings import Settings
from ingest_api.serve import api_command

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


# uvicorn workers of the servers the benchmarks start.
WORKERS = env_int("BENCH_WORKERS", 1)


class BenchFailure(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- processes and CPU


def proc_stats() -> dict[int, tuple[int, int, float]]:
    """pid -> (ppid, pgrp, cpu seconds) for every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        out[int(name)] = (int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


class CpuMeter:
    """CPU seconds used by the server's process group, the Postgres processes, any other process groups of the
    benchmark (`groups`: name -> process group id) and the whole machine.

    Anything the machine did beyond ours ("others") is load from outside the
    benchmark: on a shared 2-core machine it is what makes a run noisy.
    """

    def __init__(self, server_pgid: int | None, postmaster_pid: int, **groups: int | None):
        self.server_pgid = server_pgid
        self.postmaster_pid = postmaster_pid
        self.groups = groups

    def sample(self) -> dict[str, Any]:
        stats = proc_stats()
        pgids = {"server": self.server_pgid, **self.groups}
        out: dict[str, Any] = {
            name: {pid: cpu for pid, (_, pgrp, cpu) in stats.items() if pgid is not None and pgrp == pgid}
            for name, pgid in pgids.items()
        }
        out["postgres"] = {
            pid: cpu
            for pid, (ppid, _, cpu) in stats.items()
            if pid == self.postmaster_pid or ppid == self.postmaster_pid
        }
        out["machine"], out["steal"] = machine_cpu()
        return out


def measured(sample: dict[str, Any]) -> list[str]:
    """The names of the process groups a CpuMeter sample holds (server, the other groups, postgres)."""
    return [name for name, value in sample.items() if isinstance(value, dict)]


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds of the processes alive at the end (short-lived backends that exited are not counted)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def cpu_percent(cpu0: dict[str, Any], cpu1: dict[str, Any], wall: float, **ours: float) -> dict[str, float]:
    """% of one core over `wall` seconds: ours (server, postgres, wrk...), the rest of the machine, VM steal."""
    out = {name: round(100 * cpu_delta(cpu0[name], cpu1[name]) / wall, 1) for name in measured(cpu1)}
    out.update({name: round(100 * seconds / wall, 1) for name, seconds in ours.items()})
    machine = 100 * (cpu1["machine"] - cpu0["machine"]) / wall
    out["others"] = round(max(0.0, machine - sum(out.values())), 1)
    out["steal"] = round(100 * (cpu1["steal"] - cpu0["steal"]) / wall, 1)
    return out


def cpu_us_per_event(cpu0: dict[str, Any], cpu1: dict[str, Any], events: int) -> dict[str, float]:
    """CPU microseconds per event of each measured process group: hardly changed by load from outside."""
    return {name: round(1e6 * cpu_delta(cpu0[name], cpu1[name]) / max(1, events), 1) for name in measured(cpu1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A process of the benchmark in its own process group (so its children are measured and stopped with it),
    its output in `<workdir>/<name>.log`."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], workdir: Path):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        log(f"starting {self.name}: {' '.join(self.command[1:])}")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.command, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchFailure(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    @property
    def pgid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is not None:
            log(f"{self.name} had exited on its own (status {proc.returncode}); its log ends with:\n{self.log_tail()}")
        else:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop on SIGTERM; killing its process group")
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        # uvicorn's worker processes share the group; make sure none outlives the supervisor.
        deadline = time.monotonic() + 10
        while any(pgrp == proc.pid for _, pgrp, _ in proc_stats().values()):
            if time.monotonic() > deadline:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            time.sleep(0.1)
        log(f"{self.name} stopped")


P = TypeVar("P", bound=Process)


class Server(Process):
    """uvicorn started with `eventtrack api`'s command line, in its own process group; `env` adds to the
    environment."""

    def __init__(self, name: str, app: str, database_url: str, workdir: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = replace(
            Settings(), database_url=database_url, api_host="127.0.0.1", api_port=self.port, api_workers=WORKERS
        )
        command = api_command(settings)
        command[command.index("ingest_api.asgi:app")] = app
        base = {"DATABASE_URL": database_url, "API_PORT": str(self.port), "API_WORKERS": str(WORKERS)}
        super().__init__(name, command, {**os.environ, **base, **(env or {})}, workdir)

    def start(self) -> Server:
        super().start()
        deadline = time.monotonic() + 60
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchFailure(f"{self.name} did not answer /healthz within 60 s:\n{self.log_tail()}")
            time.sleep(0.1)


@contextmanager
def serving(
    name: str, app: str, database_url: str, workdir: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    with running(Server(name, app, database_url, workdir, env)) as server:
        yield server


@contextmanager
def running(process: P) -> Iterator[P]:
    """The process started, and stopped (its whole group) on the way out, whatever happens."""
    try:
        process.start()
        yield process
    finally:
        process.stop()


@contextmanager
def throwaway_postgres() -> Iterator[EmbeddedPostgres]:
    root = Path(tempfile.mkdtemp(prefix="etb-", dir="/tmp"))  # short: unix socket paths are limited
    pg = EmbeddedPostgres(root / "pg")
    try:
        log(f"starting embedded Postgres in {root}")
        pg.start()
        yield pg
    finally:
        if pg._server is not None:
            pg.stop()
            log("embedded Postgres stopped")
        shutil.rmtree(root, ignore_errors=True)


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def group_rss_mib(pgid: int) -> float:
    """Resident memory of every process in the server's process group (uvicorn and its workers)."""
    total = 0
    for pid, (_, pgrp, _) in proc_stats().items():
        if pgrp != pgid:
            continue
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total / 2**20


# --------------------------------------------------------------------------- database helpers


def count_events(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


def settled_count(url: str, timeout: float = 20.0) -> int:
    """The row count once it stops moving (requests in flight when wrk stopped still commit)."""
    deadline = time.monotonic() + timeout
    last, stable = count_events(url), 0
    while stable < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = count_events(url)
        stable = stable + 1 if now == last else 0
        last = now
    return last


def reset_tables(url: str) -> None:
    """Every measured phase starts from empty tables and a fresh checkpoint."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE events, event_uuids, rejected_events")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.Error:
            pass


def host_info() -> dict[str, Any]:
    """The machine a benchmark ran on."""
    cpu_model, mem_gib = "", None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": mem_gib,
        "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
    }


def machine_info(database_url: str) -> dict[str, Any]:
    """The machine, the Postgres server and its settings, and wrk's version when it is installed."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        pg_settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("shared_buffers", "synchronous_commit", "fsync", "wal_level", "max_wal_size")
        }
    wrk = shutil.which("wrk")
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines()[0:1] if wrk else []
    return host_info() | {
        "postgres": pg_version,
        "postgres_settings": pg_settings,
        "wrk": wrk_version[0] if wrk_version else "",
    }


def report_checked(result: dict, name: str, problems: list[str], summary: str) -> int:
    """A benchmark that checks guarantees: its figures and `problems` to RESULTS_DIR/<name>.json, the summary
    printed, each problem on stderr; the exit status (1 when a guarantee failed)."""
    result["failures"] = problems
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(summary)
    print(f"\nresults: {RESULTS_DIR / f'{name}.json'}")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def run_benchmark(main: Callable[[], int], stopped: str) -> NoReturn:
    """Runs a benchmark's `main` as a script: SIGTERM stops it as Ctrl-C does (the context managers stop
    `stopped`: its servers and Postgres), a BenchFailure exits with status 1, an interruption with 130."""

    def _terminate(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        raise SystemExit(main())
    except BenchFailure as failure:
        print(f"\nBENCHMARK FAILED: {failure}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"\ninterrupted; {stopped} stopped", file=sys.stderr)
        raise SystemExit(130) from None
