"""Fenced code examples of the Markdown docs, so tests can run them.

A block is runnable when its language is `sh` (run with bash) or `sql` (run
against the database). A block the tests must not run carries a marker on the
line just before its fence, with the reason:

    <!-- docs-test: skip: the set-up commands themselves; CI runs them -->

and a block whose requests are meant to be refused says so:

    <!-- docs-test: expect-4xx -->

A block that reads the data (any `sql` block; an `sh` block that queries the
`analytics.` schema or makes an admin API read of events, sessions, counts,
funnels or retention) runs on the demo stream and must find something in it:
an example whose funnel steps, filters or event names the demo never sends
answers zeros, and so does the reader's copy of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUNNABLE = ("sh", "bash", "shell", "sql")
# Admin API reads whose answer comes from the events (raw or aggregated).
ANALYTICS_READS = re.compile(r"/api/v1/analytics/admin/(events/|event-aggregates/|sessions/|funnels/|retention/)")
# Columns and JSON keys that count something; in an example's answer none may be zero.
COUNT_KEYS = frozenset(
    {"count", "total", "users", "events", "sessions", "event_count", "unique_users", "cohort_users", "dau"}
)
_CURL_DATA = ("-d", "--data", "--data-raw", "--data-binary", "--data-urlencode", "--json", "-F", "--form")
SHELL = ("sh", "bash", "shell")
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*docs-test:\s*(skip|expect-4xx)\s*(?::\s*(.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str | None = None  # "skip" | "expect-4xx"
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def examples(path: Path) -> list[Example]:
    """Every fenced block of one Markdown file, in document order."""
    found: list[Example] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        marker = _MARKER.match(lines[start - 1]) if start > 0 else None
        found.append(
            Example(
                path=path,
                line=start + 1,
                language=fence.group(1),
                code="\n".join(body) + "\n",
                marker=marker.group(1) if marker else None,
                reason=(marker.group(2) or "") if marker else "",
            )
        )
        i += 1  # the closing fence
    return found


def runnable(path: Path) -> list[Example]:
    return [e for e in examples(path) if e.language in RUNNABLE and e.marker != "skip"]


def reads_demo_data(example: Example) -> bool:
    """Whether the example queries what the demo stream fills: SQL, the analytics schema, an admin API read."""
    return example.language == "sql" or "analytics." in example.code or bool(ANALYTICS_READS.search(example.code))


def curl_read(args: list[str]) -> str | None:
    """The URL of a curl command line (its arguments) when it is a GET of an analytics read, else None."""
    method, url = None, None
    get, sends_data = False, False
    for i, arg in enumerate(args):
        if arg in ("-X", "--request") and i + 1 < len(args):
            method = args[i + 1].upper()
        elif arg in ("-G", "--get"):
            get = True
        elif arg in _CURL_DATA:
            sends_data = True
        elif arg.startswith(("http://", "https://")):
            url = arg
    method = method or ("POST" if sends_data and not get else "GET")
    return url if method == "GET" and url and ANALYTICS_READS.search(url) else None


def empty_answer(answer: object) -> str | None:
    """Why an analytics read's JSON answer shows nothing (no rows, or a zero count in a row); None when it shows data."""
    if not isinstance(answer, dict):
        return "not a JSON object"
    rows = answer.get("results", answer.get("cohorts"))
    if not rows:
        return f"no results ({rows!r})"
    for row in rows:
        if isinstance(row, dict):
            zero = sorted(k for k in COUNT_KEYS if row.get(k) == 0)
            if zero:
                return f"{', '.join(zero)} = 0 in {row}"
    return None


def zero_counts(columns: list[str], rows: list[tuple]) -> str | None:
    """Why SQL rows show nothing (none, or a zero in a counting column); None when they show data."""
    if not rows:
        return "no rows"
    counting = [i for i, name in enumerate(columns) if name in COUNT_KEYS]
    for row in rows:
        zero = [columns[i] for i in counting if row[i] == 0]
        if zero:
            return f"{', '.join(zero)} = 0 in {dict(zip(columns, row, strict=True))}"
    return None
