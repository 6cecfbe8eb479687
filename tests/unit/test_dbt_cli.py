"""The dbt invocation shortcuts of orchestration/dbt_cli.py."""

import subprocess

from orchestration.dbt_cli import PARTIAL_PARSE, EventtrackDbtCli, PartialParseCache, partial_parse_key
from orchestration.resources import DBT_PROJECT_DIR, venv_executable

ENV = {"EVENTTRACK_DB_HOST": "/tmp/pg", "EVENTTRACK_DB_NAME": "eventtrack", "HOME": "/root"}


def test_same_vars_and_connection_share_a_partial_parse():
    assert partial_parse_key({"session_timeout_minutes": 30}, ENV) == partial_parse_key(
        {"session_timeout_minutes": 30}, dict(ENV)
    )


def test_other_vars_or_another_database_do_not():
    key = partial_parse_key({"session_timeout_minutes": 30}, ENV)
    assert partial_parse_key({"session_timeout_minutes": 45}, ENV) != key
    assert partial_parse_key({"session_timeout_minutes": 30}, {**ENV, "EVENTTRACK_DB_HOST": "db.internal"}) != key


def test_unrelated_environment_does_not_matter():
    key = partial_parse_key({"session_timeout_minutes": 30}, ENV)
    assert partial_parse_key({"session_timeout_minutes": 30}, {**ENV, "HOME": "/home/other", "PATH": "/bin"}) == key


def test_partition_windows_are_not_cached():
    window = {
        "session_timeout_minutes": 30,
        "min_ts": "2026-11-25T10:00:00+00:00",
        "max_ts": "2026-11-25T11:00:00+00:00",
    }
    assert partial_parse_key(window, ENV) is None


def test_a_kept_parse_seeds_the_next_invocation_of_the_same_key(tmp_path):
    cache = PartialParseCache(tmp_path)
    first = cache.invocation_dir("dbt_models-abc")
    first.mkdir()
    (first / PARTIAL_PARSE).write_bytes(b"parsed once")
    cache.keep(first, "k1")

    second, other = cache.invocation_dir("dbt_models-def"), cache.invocation_dir("dbt_models-ghi")
    assert second != first
    cache.seed(second, "k1")
    cache.seed(other, "k2")
    assert (second / PARTIAL_PARSE).read_bytes() == b"parsed once"
    assert not (other / PARTIAL_PARSE).exists()
    assert [p.name for p in cache.cache_dir.iterdir()] == ["k1.msgpack"]  # no scratch file left behind


def test_nothing_is_kept_for_a_window_run(tmp_path):
    cache = PartialParseCache(tmp_path)
    run = cache.invocation_dir("dbt_hourly_aggregates-abc")
    run.mkdir()
    (run / PARTIAL_PARSE).write_bytes(b"window parse")
    cache.keep(run, None)
    cache.seed(cache.invocation_dir("x"), None)
    assert not cache.cache_dir.exists()


def test_the_version_dagster_uses_is_that_of_the_dbt_executable():
    resource = EventtrackDbtCli(project_dir=str(DBT_PROJECT_DIR), dbt_executable=venv_executable("dbt"))
    printed = subprocess.run([venv_executable("dbt"), "--version"], capture_output=True, text=True, check=True).stdout
    assert f"installed: {resource._cli_version}" in printed


def test_only_the_most_recent_parses_are_kept(tmp_path):
    import os

    from orchestration.dbt_cli import KEPT_PARSES

    cache = PartialParseCache(tmp_path)
    for i in range(KEPT_PARSES + 3):
        run = cache.invocation_dir(f"run{i}")
        run.mkdir()
        (run / PARTIAL_PARSE).write_bytes(b"x")
        cache.keep(run, f"key{i}")
        os.utime(cache.cache_dir / f"key{i}.msgpack", (1_000_000 + i, 1_000_000 + i))  # distinct, increasing mtimes
    kept = sorted(p.name for p in cache.cache_dir.iterdir())
    assert kept == sorted(f"key{i}.msgpack" for i in range(3, KEPT_PARSES + 3))
