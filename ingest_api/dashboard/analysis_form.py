"""The funnel form <-> the admin funnel API's query, and how the funnel and experiment pages write numbers (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

FUNNEL_FIELDS = ("steps", "window", "start", "end", "breakdown")


def funnel_form(query: Mapping[str, str]) -> dict[str, str]:
    """The form's values as typed (trimmed), every field present."""
    return {name: query.get(name, "").strip()[:2000] for name in FUNNEL_FIELDS}


def _day_start(value: str, days_after: int = 0) -> str:
    """A `YYYY-MM-DD` date as the UTC midnight `days_after` days later; anything else unchanged (the API says what is wrong)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value
    if len(value) != 10:
        return value
    try:
        return datetime.combine(day + timedelta(days=days_after), datetime.min.time(), UTC).isoformat()
    except OverflowError:
        return value


def funnel_params(form: Mapping[str, str]) -> dict[str, str]:
    """The API's query: `start` is the first UTC day counted, `end` the last (inclusive), so the range ends the next midnight."""
    return {
        "steps": form["steps"],
        "window": form["window"],
        "start": _day_start(form["start"]) if form["start"] else "",
        "end": _day_start(form["end"], 1) if form["end"] else "",
        "breakdown": form["breakdown"],
    }


def saved_funnel_query(saved: Mapping[str, Any], today: date) -> dict[str, str]:
    """The form values that run a saved funnel now: its steps, window and last `range_days` days (today included)."""
    return {
        "steps": ",".join(saved["steps"]),
        "window": window_text(saved["window_seconds"]),
        "start": (today - timedelta(days=saved["range_days"] - 1)).isoformat(),
        "end": today.isoformat(),
    }


def window_text(seconds: int) -> str:
    """Seconds as the API's window syntax, in the largest unit that divides them (86400 -> 1d)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(seconds: float | None) -> str:
    """A median time between steps, readable: 45 s, 3.5 min, 2.0 h, 1.5 d."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def percent(rate: float | None, digits: int = 1) -> str:
    """A share (0.25) as a percentage (25.0 %); missing values as a dash."""
    if rate is None:
        return "–"
    return f"{rate * 100:.{digits}f} %"


def points(value: float | None, digits: int = 1) -> str:
    """A difference of two rates in percentage points, signed: +5.0 pp."""
    if value is None:
        return "–"
    return f"{value * 100:+.{digits}f} pp"


def p_value(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 0.0001:
        return "< 0.0001"
    return f"{value:.4f}"
