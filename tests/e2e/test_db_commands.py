"""`eventtrack db-url` and `eventtrack psql`: how an analyst reaches the database, on the tests' embedded Postgres."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

EVENTTRACK = Path(sys.executable).parent / "eventtrack"


def eventtrack(*args: str, data_dir: Path, database_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["EVENTTRACK_DATA_DIR"] = str(data_dir)
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run([str(EVENTTRACK), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_db_url_prints_the_running_embedded_servers_uri(embedded_pg, database_url):
    result = eventtrack("db-url", data_dir=embedded_pg.pgdata.parent)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url == database_url and f"host={embedded_pg.pgdata}" in url  # the unix-socket directory
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "eventtrack"


def test_db_url_prints_DATABASE_URL_when_set(tmp_path):
    url = "postgresql://analyst:pw@db.example.com:5432/eventtrack"
    result = eventtrack("db-url", data_dir=tmp_path, database_url=url)
    assert result.returncode == 0 and result.stdout == url + "\n"
    assert not (tmp_path / "pg").exists()


def test_db_url_and_psql_say_so_and_fail_when_the_embedded_server_is_not_running(tmp_path):
    for command in (["db-url"], ["psql", "-c", "select 1"]):
        result = eventtrack(*command, data_dir=tmp_path)
        assert result.returncode == 1 and result.stdout == ""
        assert "is not running" in result.stderr and "make run" in result.stderr, result.stderr
    assert not (tmp_path / "pg").exists(), "started an embedded server"


def test_psql_runs_the_bundled_client_connected_and_passes_arguments_through(embedded_pg, database_url):
    data_dir = embedded_pg.pgdata.parent
    result = eventtrack(
        "psql", "-At", "-c", "select current_database(), current_setting('server_version_num')", data_dir=data_dir
    )
    assert result.returncode == 0, result.stderr
    name, version = result.stdout.strip().split("|")
    assert name == "eventtrack" and int(version) >= 180000
    # \l reads pg_database columns of PostgreSQL 17+: an older psql (Debian 12's 15) fails on it.
    listing = eventtrack("psql", "-c", r"\l", data_dir=data_dir)
    assert listing.returncode == 0 and "eventtrack" in listing.stdout, listing.stderr
    # psql's own exit status comes back (a failing statement with ON_ERROR_STOP).
    failing = eventtrack("psql", "-v", "ON_ERROR_STOP=1", "-c", "select * from no_such_table", data_dir=data_dir)
    assert failing.returncode != 0 and "no_such_table" in failing.stderr


def test_psql_connects_to_DATABASE_URL_when_set(embedded_pg, database_url, tmp_path):
    from eventtrack.embedded_postgres import ensure_database

    ensure_database(embedded_pg.admin_url(), "analyst_copy")
    result = eventtrack(
        "psql",
        "--",
        "-At",
        "-c",
        "select current_database()",
        data_dir=tmp_path,
        database_url=embedded_pg.url("analyst_copy"),
    )
    assert result.returncode == 0 and result.stdout.strip() == "analyst_copy", result.stderr
    assert not (tmp_path / "pg").exists()


def test_psql_keeps_the_password_of_DATABASE_URL_off_its_command_line(embedded_pg, database_url, tmp_path):
    url = database_url.replace("postgres:@", "postgres:s3cret-pw@")  # the embedded server trusts, any password does
    # psql's \! runs a shell whose parent is psql: print psql's own command line.
    result = eventtrack("psql", "-c", r"\! tr '\0' ' ' < /proc/$PPID/cmdline", data_dir=tmp_path, database_url=url)
    assert result.returncode == 0, result.stderr
    assert "psql" in result.stdout and "dbname=eventtrack" in result.stdout and "s3cret-pw" not in result.stdout
