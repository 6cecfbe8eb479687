"""`eventtrack up` (what `make run` calls): embedded Postgres, migrations, API; Ctrl-C stops all of it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


def test_up_serves_the_api_on_embedded_postgres_and_ctrl_c_stops_everything():
    data_dir = Path(tempfile.mkdtemp(prefix="et-up-", dir="/tmp"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(EVENTTRACK_DATA_DIR=str(data_dir), API_PORT=str(port), DAGSTER_PORT=str(free_port()))
    eventtrack = Path(sys.executable).parent / "eventtrack"
    proc = subprocess.Popen([str(eventtrack), "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "eventtrack up did not become ready"
            time.sleep(0.5)
        response = httpx.post(f"{base}/api/v1/analytics/capture/", json={"distinct_id": "u", "event": "app_open"})
        assert response.status_code == 200
        assert (data_dir / "pg" / "postmaster.pid").exists()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not (data_dir / "pg" / "postmaster.pid").exists(), "embedded Postgres still running"
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            raise AssertionError("API still answering after Ctrl-C")
        except httpx.ConnectError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_migrate_honours_database_url_with_a_unix_socket_host(embedded_pg, tmp_path):
    from ingest_api.embedded_postgres import ensure_database

    ensure_database(embedded_pg.admin_url(), "other_instance")
    url = embedded_pg.url("other_instance")
    assert "host=/" in url  # a libpq URI with a unix-socket directory
    env = {**os.environ, "DATABASE_URL": url, "EVENTTRACK_DATA_DIR": str(tmp_path / "unused")}
    eventtrack = Path(sys.executable).parent / "eventtrack"
    for _ in range(2):  # idempotent
        result = subprocess.run([str(eventtrack), "migrate"], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert "none pending" in result.stdout
    assert not (tmp_path / "unused" / "pg").exists(), "started an embedded server although DATABASE_URL was set"

    import psycopg

    with psycopg.connect(url) as conn:
        partitions = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").fetchone()[0]
    assert partitions == 98  # today - 90 days .. today + 7 days
