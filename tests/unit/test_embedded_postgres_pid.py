"""Whether a data dir's postmaster runs: one rule (its pid is alive, not a zombie, and runs in that data dir)."""

from __future__ import annotations

import os
import subprocess
import sys

from eventtrack.embedded_postgres import postmaster_pid, running_url


def _pid_file(pgdata, pid: int) -> None:
    pgdata.mkdir(exist_ok=True)
    lines = [str(pid), str(pgdata), "1700000000", "5432", str(pgdata), "localhost", "  5432001  0", "ready"]
    (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")


def test_a_pid_file_naming_another_program_is_not_a_running_server(tmp_path):
    # After a crash and a reboot the file's pid may belong to any program: here, this test's own process.
    pgdata = tmp_path / "pg"
    _pid_file(pgdata, os.getpid())
    assert postmaster_pid(pgdata) is None
    assert running_url(pgdata) is None


def test_a_process_running_in_the_data_dir_is_taken_for_its_server(tmp_path):
    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=pgdata)
    try:
        _pid_file(pgdata, stand_in.pid)
        assert postmaster_pid(pgdata) == stand_in.pid
        assert running_url(pgdata, "eventtrack") == f"postgresql://postgres:@/eventtrack?host={pgdata}"
    finally:
        stand_in.kill()
        stand_in.wait()
    assert postmaster_pid(pgdata) is None and running_url(pgdata) is None


def test_no_pid_file_no_server(tmp_path):
    assert postmaster_pid(tmp_path / "missing") is None and running_url(tmp_path / "missing") is None
