"""`eventtrack-dbt`, the dbt command the pipeline runs, answers as `dbt` does: same output, same exit code."""

import os
import subprocess
import sys
import time
from pathlib import Path

from orchestration.dbt_server import socket_path, stop_server
from orchestration.resources import DBT_COMMAND, DBT_PROJECT_DIR, venv_executable


def _both(args: list[str], tmp_path) -> list[subprocess.CompletedProcess]:
    runs = []
    for name in (DBT_COMMAND, "dbt"):
        out = tmp_path / name
        argv = [venv_executable(name), *args, "--target-path", str(out), "--log-path", str(out)]
        runs.append(subprocess.run(argv, capture_output=True, text=True, cwd=DBT_PROJECT_DIR, timeout=120))
    return runs


def test_a_command_prints_what_dbt_prints(tmp_path):
    project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    served, real = _both(["ls", "--quiet", "--resource-type", "model", *project], tmp_path)
    assert served.returncode == real.returncode == 0
    assert served.stdout == real.stdout
    assert "eventtrack.marts.agg_events_hourly" in served.stdout


def test_a_failing_command_fails_with_dbt_s_exit_code(tmp_path):
    served, real = _both(["run", "--project-dir", str(tmp_path / "no-such-project")], tmp_path)
    assert real.returncode == 2
    assert (served.returncode, served.stdout, served.stderr) == (real.returncode, real.stdout, real.stderr)
    assert "Invalid value for '--project-dir'" in served.stderr


def test_the_server_is_started_once_and_reused(tmp_path):
    project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    run = [venv_executable(DBT_COMMAND), "ls", "--quiet", "--resource-type", "model", "--select", "agg_events_hourly"]
    run += project
    run += ["--target-path", str(tmp_path), "--log-path", str(tmp_path)]
    lock = Path(str(socket_path()) + ".lock")
    servers = set()
    for _ in range(2):
        done = subprocess.run(run, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "eventtrack.marts.agg_events_hourly"
        servers.add(int(lock.read_text().split()[0]))
    assert len(servers) == 1
    assert next(iter(servers)) != os.getpid()  # its own process, not the caller's child


def test_a_stopped_server_is_gone_with_its_socket(tmp_path):
    """On a private socket: the suite's workers share the install's server."""
    path = tmp_path / "dbt.sock"
    server = subprocess.Popen([sys.executable, "-m", "orchestration.dbt_server", "--serve", str(path)])
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.exists()
        assert stop_server(path)
        assert server.wait(timeout=30) == 0
        assert not path.exists()
        assert not stop_server(path)  # nothing left to stop: the pid in the lock file is not signalled again
    finally:
        server.kill()
