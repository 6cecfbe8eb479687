"""Regular expressions of flag conditions (`regex`, `not_regex`), run on RE2.

Python's `re` backtracks: a pattern like `^([a-z0-9]+\\.?)+@example\\.com$` takes
exponential time on a near-miss, and the text it runs on is whatever a client
sends. RE2 runs in time linear in the text and refuses what it cannot do that
way (backreferences, lookaround), so the refusal happens when the flag is saved,
never at evaluation time. The syntax is RE2's (docs/feature_flags.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is an answer to the admin, not a log line


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> tuple[Any, str | None]:
    """(the compiled pattern, None), or (None, why RE2 refuses it)."""
    try:
        return re2.compile(pattern, _OPTIONS), None
    except re2.error as exc:
        reason = exc.args[0] if exc.args else b"refused"
        return None, reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    except UnicodeEncodeError:  # a lone surrogate (the stdlib JSON parser lets them through): RE2 reads UTF-8
        return None, "not valid Unicode text"


def pattern_problem(pattern: str) -> str | None:
    """Why RE2 refuses `pattern` (a message for the admin), or None when it compiles."""
    problem = _compiled(pattern)[1]
    return None if problem is None else f"invalid regular expression: {problem}"


def searcher(pattern: str) -> Callable[[str], bool] | None:
    """A test of whether `pattern` matches anywhere in a text; None when RE2 refuses the pattern."""
    compiled = _compiled(pattern)[0]
    if compiled is None:
        return None

    def search(text: str) -> bool:
        try:
            return compiled.search(text) is not None
        except UnicodeEncodeError:  # lone surrogates in the text: matched as "?"
            return compiled.search(text.encode("utf-8", "replace").decode("utf-8")) is not None

    return search
