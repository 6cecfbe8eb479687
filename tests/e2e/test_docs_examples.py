"""Every `sh` and `sql` example of README.md and docs/ runs against a real stack.

Each Markdown file gets a fresh database and its own API server (so examples
that create ids, keys or flags start from the same state a reader's new
install has). `sh` blocks run in document order with bash: `localhost:8000`
points at the test server, `.venv/bin/eventtrack` is this checkout's CLI, and,
as in a reader's shell, a bare `eventtrack` is not on the PATH. `$KEY` holds an
admin key. A request answering 4xx or 5xx fails the example unless the block is
marked `expect-4xx` (then only 5xx fails). Before the first block that reads
the analytics (tests/docs_examples.py `reads_demo_data`) a demo stream is sent
through the API and `eventtrack catch-up` run; such blocks must then find it:
SQL returns rows without a zero count, and every admin API read answers rows
without a zero count.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from eventtrack.migrate import migrate
from tests.conftest import RunningServer, settings_for, wait_until
from tests.docs_examples import (
    RUNNABLE,
    SHELL,
    Example,
    curl_read,
    empty_answer,
    examples,
    reads_demo_data,
    runnable,
    zero_counts,
)

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent

# A curl that fails the example on an error status; the body is still printed for the log,
# and kept with the arguments in $DOCS_ANSWERS for the checks on analytics reads.
CURL_GUARD = r"""
curl() {
  local out status answer
  out=$(command curl -sS -w '\n%{http_code}' "$@") || return 1
  status=${out##*$'\n'}
  printf '%s\n' "${out%$'\n'*}"
  answer=$(mktemp -d "$DOCS_ANSWERS/XXXXXX")
  printf '%s\0' "$@" > "$answer/args"
  printf '%s' "${out%$'\n'*}" > "$answer/body"
  if (( status >= 500 )) || { (( status >= 400 )) && [[ -z "${DOCS_EXPECT_4XX:-}" ]]; }; then
    echo "docs example got HTTP $status" >&2
    return 1
  fi
}
"""


def _database_for(embedded_pg, name: str) -> str:
    with psycopg.connect(embedded_pg.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = embedded_pg.url(name)
    migrate(url, retention_days=90, ahead_days=7)
    return url


def _path_without_eventtrack() -> str:
    """The PATH of a reader who has not activated the venv: a bare `eventtrack` is "command not found"."""
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and not (Path(d) / "eventtrack").exists())


def _env(url: str, data_dir: Path, key: str, expect_4xx: bool, answers: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": _path_without_eventtrack(),
        "DATABASE_URL": url,
        "EVENTTRACK_DATA_DIR": str(data_dir),
        "KEY": key,
        "DOCS_STATE": str(data_dir.parent / "shell-state"),
        "DOCS_ANSWERS": str(answers),
    }
    if expect_4xx:
        env["DOCS_EXPECT_4XX"] = "1"
    return env


# Shell variables an example sets (KEY=$(...)) are kept for the next blocks of
# the same file, as in a reader's terminal; bash's own variables are not.
SAVE_VARIABLES = r"""
for v in $(compgen -v); do
  [[ $v =~ ^[A-Z][A-Z0-9_]*$ ]] || continue
  [[ $v =~ ^(BASH.*|EUID|UID|PPID|SHELLOPTS|GROUPS|FUNCNAME|PIPESTATUS|DIRSTACK|HOST.*|OSTYPE|MACHTYPE|SHLVL|OPT.*|IFS|PS4|LINENO|RANDOM|SRANDOM|SECONDS|EPOCH.*|HISTCMD|PWD|OLDPWD|PATH|COMP.*)$ ]] && continue
  declare -p "$v"
done > "$DOCS_STATE"
"""


def _shell(example: Example, server: RunningServer) -> str:
    code = example.code.replace("http://localhost:8000", server.url).replace(".venv/bin/", f"{BIN}/")
    restore = '[[ -s "$DOCS_STATE" ]] && source "$DOCS_STATE"\n'
    return "set -euo pipefail\n" + restore + CURL_GUARD + code + SAVE_VARIABLES


def _seed_and_build(url: str, server: RunningServer, env: dict[str, str]) -> None:
    from eventtrack_cli.demo import plan_demo, send_demo

    now = datetime.now(UTC)
    with open(os.devnull, "w") as progress:
        result = send_demo(server.url, plan_demo(users=12, days=3, now=now, seed=11), now, out=progress)
    assert result.failed == 0, result.summary()
    _build(env)


def _build(env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(BIN / "eventtrack"), "catch-up"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_every_skipped_example_says_why():
    for path in DOC_FILES:
        for example in examples(path):
            if example.marker == "skip":
                assert example.reason, f"{example.where}: a skipped example must give its reason"


def test_every_request_example_is_run():
    """A curl or CLI example in a block the test does not run (plain fence, other language) would go stale."""
    for path in DOC_FILES:
        for example in examples(path):
            if example.language in RUNNABLE or example.marker == "skip":
                continue
            assert "curl " not in example.code and "eventtrack " not in example.code, (
                f"{example.where}: put this example in a ```sh block (run by this test) or mark it skipped with a reason"
            )


@pytest.mark.parametrize("doc", [p for p in DOC_FILES if runnable(p)], ids=lambda p: p.name)
def test_doc_examples_run(doc: Path, embedded_pg, tmp_path):
    from ingest_api.admin.key_store import create_admin_key

    url = _database_for(embedded_pg, f"docs_{doc.stem.lower()}")
    with RunningServer(settings_for(url)) as server:
        _, key = create_admin_key(url, "docs")
        wait_until(lambda: _admin_ok(server, key), timeout=10)
        seeded = shell_since_build = False
        for example in runnable(doc):
            answers = tmp_path / "answers" / str(example.line)
            answers.mkdir(parents=True)
            env = _env(url, tmp_path / "data", key, example.marker == "expect-4xx", answers)
            if not seeded and reads_demo_data(example):
                _seed_and_build(url, server, env)
                seeded, shell_since_build = True, False
            if example.language in SHELL:
                code, out, err = _run_bash(_shell(example, server), env)
                shell_since_build = True
                assert code == 0, f"{example.where} failed:\n{example.code}\n{out}\n{err}"
                for args, answer in _analytics_answers(answers):
                    problem = empty_answer(answer)
                    assert problem is None, (
                        f"{example.where}: `curl {' '.join(args)}` shows nothing on the demo data: {problem}"
                    )
            else:
                problem = zero_counts(*_query(url, example.code))
                if problem and seeded and shell_since_build:
                    # What earlier blocks created (e.g. a saved funnel) shows after the next pipeline run.
                    _build(env)
                    shell_since_build = False
                    problem = zero_counts(*_query(url, example.code))
                assert problem is None, f"{example.where} shows nothing on the demo data ({problem}):\n{example.code}"


def _analytics_answers(answers: Path) -> list[tuple[list[str], object]]:
    """(curl arguments, JSON answer) of each analytics read an example's curl calls made."""
    found = []
    for answer in sorted(answers.iterdir()):
        args = (answer / "args").read_text().split("\0")[:-1]
        if curl_read(args):
            body = (answer / "body").read_text()
            try:
                found.append((args, json.loads(body)))
            except ValueError:
                found.append((args, body))
    return found


def _run_bash(script: str, env: dict[str, str], timeout: float = 300) -> tuple[int, str, str]:
    """bash in its own process group, so a runaway example is killed whole (children included)."""
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return -9, out, err + f"\n(killed after {timeout} s)"
    return proc.returncode, out, err


def _query(url: str, sql: str) -> tuple[list[str], list[tuple]]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(sql)
        return [c.name for c in cursor.description or []], cursor.fetchall()


def _admin_ok(server: RunningServer, key: str) -> bool:
    import httpx

    response = httpx.get(
        f"{server.url}/api/v1/analytics/admin/feature-flags/", headers={"Authorization": f"Bearer {key}"}
    )
    return response.status_code == 200
