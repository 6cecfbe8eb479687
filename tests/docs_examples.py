"""Fenced code examples of the Markdown docs, so tests can run them.

A block is runnable when its language is `sh` (run with bash) or `sql` (run
against the database). A block the tests must not run carries a marker on the
line just before its fence, with the reason:

    <!-- docs-test: skip: the set-up commands themselves; CI runs them -->

and a block whose requests are meant to be refused says so:

    <!-- docs-test: expect-4xx -->
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUNNABLE = ("sh", "bash", "shell", "sql")
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
