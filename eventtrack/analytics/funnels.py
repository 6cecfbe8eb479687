"""Funnels over raw events: parameter parsing, the one SQL query, and the conversion arithmetic (pure).

The one definition of a funnel: the live endpoint (ingest_api/admin/analytics.py) and the
saved funnels' daily results (orchestration/funnels.py, into analytics.agg_funnel_results) both
run funnel_sql and shape its rows with step_results.

Definition (docs/analytics.md "Funnels"):
- A user enters with their *first* step-1 event in [start, end): that instant is t1,
  and the breakdown value is read from that event.
- Step k (k > 1) is the user's earliest step-k event strictly later than the
  step k-1 event and strictly before t1 + window. Later steps may fall after
  `end` (but within the window). Greedy earliest matching reaches the furthest
  step possible from that t1.
- Events with the same timestamp are not ordered, so they never make two
  consecutive steps; a repeated step (`view_item,view_item`) needs two events
  at different instants. Events before t1, and repeated steps before the next
  one, are ignored.
- Property filters apply to every step's events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

MAX_STEPS = 10
MAX_WINDOW = timedelta(days=90)
MAX_BREAKDOWN_VALUES = 50
MAX_EVENT_LENGTH = 200  # an event type named in a funnel step
WINDOW_PATTERN = r"([1-9][0-9]{0,6})([smhd])"  # a conversion window: `24h`, `7d`
_WINDOW = re.compile(WINDOW_PATTERN)
# A saved funnel: its name, and the whole UTC days before each run it covers.
MAX_SAVED_NAME_LENGTH = 200
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FunnelParamError(ValueError):
    def __init__(self, fields: dict[str, str]):
        super().__init__(", ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def parse_steps(raw: str | None) -> list[str]:
    if not raw:
        raise FunnelParamError({"steps": f"required: 2 to {MAX_STEPS} event types separated by commas"})
    steps = [s.strip() for s in raw.split(",")]
    if not 2 <= len(steps) <= MAX_STEPS:
        raise FunnelParamError({"steps": f"2 to {MAX_STEPS} event types separated by commas"})
    if any(not s or len(s) > MAX_EVENT_LENGTH or "\x00" in s for s in steps):
        raise FunnelParamError(
            {"steps": f"an event type is empty, longer than {MAX_EVENT_LENGTH} characters or holds NUL"}
        )
    return steps


def parse_window(raw: str | None) -> timedelta:
    """`30m`, `24h`, `7d`, `3600s`; default 24h; at most 90 days."""
    if raw is None or raw == "":
        return timedelta(hours=24)
    match = _WINDOW.fullmatch(raw)
    if not match:
        raise FunnelParamError({"window": "a positive integer followed by s, m, h or d, e.g. 24h"})
    window = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if window > MAX_WINDOW:
        raise FunnelParamError({"window": "at most 90 days"})
    return window


def funnel_sql(n_steps: int, breakdown_expr: str | None, filters: str) -> str:
    """One query: per step (and breakdown value, plus the total) the users and the median seconds from the previous step,
    as rows (is_total, bd, step, users, median_seconds): shape_results' input.

    Binds: :s1..:sN, :start, :end, :end_w (end + window), :window, plus the filters'
    parameters. `filters` is rendered by segments.filters_sql on alias `e`.

    Step 1 is one aggregate over the step-1 events of the range (an index-only scan of
    events (event_type, distinct_id, timestamp) without filters). Each later step is,
    per user, one probe of that index for the earliest event after the previous step
    (ORDER BY timestamp LIMIT 1; run-time partition pruning keeps it to the days of
    the window), so the cost follows users x steps rather than every event of the steps.
    """
    ctes = [
        f"""first_step AS (
    SELECT e.distinct_id, min(e."timestamp") AS t1
    FROM events e
    WHERE e.event_type = :s1 AND e."timestamp" >= :start AND e."timestamp" < :end{filters}
    GROUP BY e.distinct_id
)"""
    ]
    if breakdown_expr:
        # The breakdown value is read from the user's first step-1 event (any one of them on a timestamp tie).
        ctes.append(
            f"""f1 AS (
    SELECT f.distinct_id, f.t1, b.bd, NULL::timestamptz AS prev, f.t1 AS t
    FROM first_step f
    LEFT JOIN LATERAL (
        SELECT {breakdown_expr} AS bd FROM events e
        WHERE e.event_type = :s1 AND e.distinct_id = f.distinct_id AND e."timestamp" = f.t1
          AND e."timestamp" >= :start AND e."timestamp" < :end{filters}
        LIMIT 1
    ) b ON true
)"""
        )
    else:
        ctes.append(
            "f1 AS (SELECT distinct_id, t1, NULL::text AS bd, NULL::timestamptz AS prev, t1 AS t FROM first_step)"
        )
    for k in range(2, n_steps + 1):
        ctes.append(
            f"""f{k} AS (
    SELECT p.distinct_id, p.t1, p.bd, p.t AS prev, n.t
    FROM f{k - 1} p
    CROSS JOIN LATERAL (
        SELECT e."timestamp" AS t FROM events e
        WHERE e.event_type = :s{k} AND e.distinct_id = p.distinct_id
          AND e."timestamp" > p.t AND e."timestamp" < p.t1 + :window
          AND e."timestamp" >= :start AND e."timestamp" < :end_w{filters}  -- plan-time pruning to the range's partitions
        ORDER BY e."timestamp" LIMIT 1
    ) n
)"""
        )
    group = "GROUP BY GROUPING SETS ((bd), ())" if breakdown_expr else ""
    is_total = "GROUPING(bd) = 1" if breakdown_expr else "true"
    value = "bd" if breakdown_expr else "NULL::text AS bd"
    selects = []
    for k in range(1, n_steps + 1):
        median = (
            "NULL::float8"
            if k == 1
            else "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t - prev)::float8)"
        )
        selects.append(
            f"SELECT {is_total} AS is_total, {value}, {k} AS step, count(*)::bigint AS users, {median} AS median_seconds FROM f{k} {group}"
        )
    return "WITH " + ",\n".join(ctes) + "\n" + "\nUNION ALL\n".join(selects)


def clickhouse_funnel_sql(database: str, n_steps: int, breakdown_expr: str | None, filters: str) -> str:
    """funnel_sql's definition on ClickHouse, with the same output rows (is_total, bd, step, users,
    median_seconds), so shape_results and the answer are the same.

    One scan: the events of the steps in [start, end + window) grouped by user, each later step's
    times sorted into an array; the greedy walk is then arrayFirstOrNull per step (the earliest time
    after the previous step and before t1 + window). The median is Postgres's percentile_cont(0.5)
    computed the same way: the lower and upper middle values, lo + (hi - lo) * 0.5.
    Binds (`{name:Type}`): s1..sN, steps, start, end, end_w, window_seconds, plus the filters'.
    """
    step1 = "event_type = {s1:String} AND timestamp < {end:DateTime64(6, 'UTC')}"
    arrays = "".join(
        f",\n        arraySort(groupArrayIf(timestamp, event_type = {{s{k}:String}})) AS a{k}"
        for k in range(2, n_steps + 1)
    )
    chain = "".join(
        f",\n    arrayFirstOrNull(x -> x > t{k - 1} AND x < deadline, a{k}) AS t{k}" for k in range(2, n_steps + 1)
    )
    reached = ", ".join(
        ["(1, CAST(NULL AS Nullable(Float64)), true)"]
        + [f"({k}, dateDiff('microsecond', t{k - 1}, t{k}) / 1e6, t{k} IS NOT NULL)" for k in range(2, n_steps + 1)]
    )
    # In a tuple: aggregate functions skip a NULL argument, and a NULL value is a breakdown value like any other.
    value = (
        f"argMinIf(tuple({breakdown_expr}), timestamp, {step1}).1"
        if breakdown_expr
        else "CAST(NULL AS Nullable(String))"
    )
    groups = "[(false, bd), (true, NULL)]" if breakdown_expr else "[(true, NULL)]"
    return f"""
SELECT is_total, value, step, users, if(step = 1, NULL, lo + (hi - lo) * 0.5) AS median_seconds
FROM (
    SELECT g.1 AS is_total, g.2 AS value, r.1 AS step, count() AS users,
        quantileExactLow(0.5)(r.2) AS lo, quantileExactHigh(0.5)(r.2) AS hi
    FROM (
        SELECT bd, arrayFilter(x -> x.3, [{reached}]) AS reached
        FROM (
            SELECT bd, t1, addSeconds(t1, {{window_seconds:Int64}}) AS deadline{chain}
            FROM (
                SELECT distinct_id, CAST({value} AS Nullable(String)) AS bd, minIf(timestamp, {step1}) AS t1{arrays}
                FROM {database}.events
                WHERE event_type IN {{steps:Array(String)}}
                  AND timestamp >= {{start:DateTime64(6, 'UTC')}} AND timestamp < {{end_w:DateTime64(6, 'UTC')}}{filters}
                GROUP BY distinct_id
                HAVING countIf({step1}) > 0
            )
        )
    )
    ARRAY JOIN reached AS r
    ARRAY JOIN {groups} AS g
    GROUP BY is_total, value, step
)"""


def clickhouse_funnel_params(steps: list[str], start, end, window: timedelta) -> dict[str, Any]:
    params: dict[str, Any] = {
        "steps": steps,
        "start": start,
        "end": end,
        "end_w": end + window,
        "window_seconds": int(window.total_seconds()),
    }
    params.update({f"s{k}": step for k, step in enumerate(steps, 1)})
    return params


def funnel_params(steps: list[str], start, end, window: timedelta) -> dict[str, Any]:
    params: dict[str, Any] = {"start": start, "end": end, "end_w": end + window, "window": window}
    params.update({f"s{k}": step for k, step in enumerate(steps, 1)})
    return params


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


@dataclass(frozen=True)
class StepRow:
    step: int
    users: int
    median_seconds: float | None


def step_results(steps: list[str], rows: list[StepRow]) -> list[dict[str, Any]]:
    """Per step: users, conversion from the previous step and from the first, median seconds from the previous step.

    Step 1's conversion from the previous step is 1.0 (null when nobody entered), as its
    conversion from the first: the public API's answer, and the saved funnels' too.
    """
    users = {r.step: r.users for r in rows}
    medians = {r.step: r.median_seconds for r in rows}
    first = users.get(1, 0)
    out = []
    for k, event_type in enumerate(steps, 1):
        n = users.get(k, 0)
        out.append(
            {
                "step": k,
                "event_type": event_type,
                "users": n,
                "conversion_from_previous": 1.0
                if k == 1 and first
                else (_rate(n, users.get(k - 1, 0)) if k > 1 else None),
                "conversion_from_first": _rate(n, first),
                "median_seconds_from_previous": medians.get(k),
            }
        )
    return out


def shape_results(
    steps: list[str], rows: list[tuple[bool, Any, int, int, float | None]], with_breakdown: bool
) -> dict[str, Any]:
    """rows: (is_total, breakdown value, step, users, median seconds) from funnel_sql."""
    total = [StepRow(step, users, median) for is_total, _, step, users, median in rows if is_total]
    body: dict[str, Any] = {"results": step_results(steps, total)}
    if with_breakdown:
        by_value: dict[Any, list[StepRow]] = {}
        for is_total, value, step, users, median in rows:
            if not is_total:
                by_value.setdefault(value, []).append(StepRow(step, users, median))
        ordered = sorted(
            by_value.items(), key=lambda kv: (-next((r.users for r in kv[1] if r.step == 1), 0), str(kv[0]))
        )
        body["breakdown_values_truncated"] = len(ordered) > MAX_BREAKDOWN_VALUES
        body["breakdown"] = [
            {"value": value, "results": step_results(steps, rs)} for value, rs in ordered[:MAX_BREAKDOWN_VALUES]
        ]
    return body


def parse_saved_funnel(body: dict[str, Any]) -> dict[str, Any]:
    """A saved funnel's definition from a JSON body: name, steps (list), window (e.g. "24h"), range_days (1-366, default 30)."""
    fields: dict[str, str] = {}
    unknown = sorted(set(body) - {"name", "steps", "window", "range_days"})
    for name in unknown:
        fields[name] = "unknown field"
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_SAVED_NAME_LENGTH or "\x00" in name:
        fields["name"] = f"required: a string of 1-{MAX_SAVED_NAME_LENGTH} characters"
    steps = body.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        fields["steps"] = f"required: a list of 2 to {MAX_STEPS} event types"
    else:
        try:
            steps = parse_steps(",".join(steps)) if all("," not in s for s in steps) else None
        except FunnelParamError as err:
            fields.update(err.fields)
        if steps is None:
            fields["steps"] = "an event type may not contain a comma"
    window = body.get("window", "24h")
    try:
        window = parse_window(window) if isinstance(window, str) else None
    except FunnelParamError as err:
        fields.update(err.fields)
    if window is None:
        fields["window"] = "a string like 24h"
    range_days = body.get("range_days", DEFAULT_RANGE_DAYS)
    if isinstance(range_days, bool) or not isinstance(range_days, int) or not 1 <= range_days <= MAX_RANGE_DAYS:
        fields["range_days"] = f"an integer from 1 to {MAX_RANGE_DAYS}"
    if fields:
        raise FunnelParamError(fields)
    return {
        "name": name.strip(),
        "steps": steps,
        "window_seconds": int(window.total_seconds()),
        "range_days": range_days,
    }


@dataclass(frozen=True)
class SavedFunnel:
    """A row of public.saved_funnels (as parse_saved_funnel stored it)."""

    funnel_id: int
    name: str
    steps: list[str]
    window_seconds: int
    range_days: int


def saved_funnel_range(as_of: datetime, range_days: int) -> tuple[datetime, datetime]:
    """The last `range_days` whole UTC days before `as_of`: [midnight UTC range_days days earlier, midnight UTC of as_of)."""
    end = datetime.combine(as_of.astimezone(UTC).date(), time(), UTC)
    return end - timedelta(days=range_days), end


def saved_funnel_query(funnel: SavedFunnel, as_of: datetime) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of a saved funnel's results as of `as_of`: the live endpoint's query
    over the funnel's range, without filters or breakdown."""
    start, end = saved_funnel_range(as_of, funnel.range_days)
    window = timedelta(seconds=funnel.window_seconds)
    return funnel_sql(len(funnel.steps), None, ""), funnel_params(funnel.steps, start, end, window)


def saved_funnel_rows(
    funnel: SavedFunnel, as_of: datetime, rows: list[tuple[bool, Any, int, int, float | None]]
) -> list[dict[str, Any]]:
    """funnel_sql's rows for a saved funnel -> its rows of analytics.agg_funnel_results: the endpoint's
    `results` (shape_results) with the funnel and its range."""
    start, end = saved_funnel_range(as_of, funnel.range_days)
    results = shape_results(funnel.steps, rows, with_breakdown=False)["results"]
    return [
        {
            "funnel_id": funnel.funnel_id,
            "funnel_name": funnel.name,
            "step": r["step"],
            "event_type": r["event_type"],
            "range_start": start,
            "range_end": end,
            "window_seconds": funnel.window_seconds,
            "users": r["users"],
            "median_seconds_from_previous": r["median_seconds_from_previous"],
            "conversion_from_previous": r["conversion_from_previous"],
            "conversion_from_first": r["conversion_from_first"],
        }
        for r in results
    ]
