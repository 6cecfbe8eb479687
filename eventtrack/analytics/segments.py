"""Property filters and breakdowns of the admin analytics endpoints (pure: parse, then render SQL).

Syntax of one `filter` query parameter (repeat it to AND several):

    properties.<key><op><value>      op: =  !=  >  >=  <  <=

`=` / `!=` compare the property's text form (`properties->>'key'`) with the value;
`!=` also matches events without the property. `>`, `>=`, `<`, `<=` compare
numbers and only match events whose property is a JSON number.

Values are always bind parameters. Each condition is rendered for Postgres (`filters_sql`) and for
ClickHouse (`clickhouse_filters_sql`, docs/scaling.md), to the same meaning: ClickHouse keeps
Postgres's own text of the properties and reads it with JSONExtract*, so a property's text form is
byte for byte what `->>` gives. A key is rendered as a SQL string literal
(never a parameter), so that the expression is the very one a promoted
property's expression index is built on (ingest_api/promote.py); keys are
therefore limited to a safe alphabet, which has no quote or backslash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

KEY = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_$.:\-]{0,99}")  # always fullmatch: `$` would let a final "\n" in
_FILTER = re.compile(r"properties\.([^=!<>]+)(=|!=|>=|<=|>|<)(.*)", re.S)
NUMERIC_OPS = (">", ">=", "<", "<=")
COLUMN_BREAKDOWNS = ("event_type", "os_name", "os_version", "app_version")
MAX_FILTERS = 10


class SegmentError(ValueError):
    def __init__(self, fields: dict[str, str]):
        super().__init__(", ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class PropertyFilter:
    key: str
    op: str
    value: str | Decimal


def valid_key(key: str) -> bool:
    return KEY.fullmatch(key) is not None


def _column(key: str, alias: str) -> str:
    if not valid_key(key):  # the one guard between a key and the SQL text
        raise SegmentError({"key": "invalid property key"})
    return f"{alias}.properties" if alias else "properties"


def text_expr(key: str, alias: str = "e") -> str:
    """`(alias.properties ->> 'key')`: the text form; also a promoted text index's expression (alias "")."""
    return f"({_column(key, alias)} ->> '{key}')"


def numeric_expr(key: str, alias: str = "e") -> str:
    """The property as numeric when it is a JSON number, else null (a cast of "abc" would fail the query)."""
    col = _column(key, alias)
    return f"(CASE WHEN jsonb_typeof({col} -> '{key}') = 'number' THEN ({col} ->> '{key}')::numeric END)"


def parse_filter(raw: str) -> PropertyFilter:
    match = _FILTER.fullmatch(raw)
    if not match:
        raise SegmentError(
            {"filter": f"expected properties.<key><op><value> with op one of = != > >= < <=, got {raw[:60]!r}"}
        )
    key, op, value = match.groups()
    if not valid_key(key):
        raise SegmentError({"filter": f"property key {key[:60]!r}: 1-100 characters of letters, digits, _ $ . : -"})
    if "\x00" in value or len(value) > 200:
        raise SegmentError({"filter": "value too long or holds NUL characters"})
    if op in NUMERIC_OPS:
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise SegmentError({"filter": f"{op} needs a number, got {value[:60]!r}"}) from None
        if not number.is_finite() or abs(number.adjusted()) > 100:  # beyond that Postgres' numeric overflows
            raise SegmentError({"filter": f"{op} needs a finite number below 1e100"})
        return PropertyFilter(key, op, number)
    return PropertyFilter(key, op, value)


def parse_filters(raws: list[str]) -> list[PropertyFilter]:
    if len(raws) > MAX_FILTERS:
        raise SegmentError({"filter": f"at most {MAX_FILTERS} filters"})
    return [parse_filter(r) for r in raws]


def filters_sql(filters: list[PropertyFilter], alias: str = "e", prefix: str = "pf") -> tuple[str, dict[str, Any]]:
    """` AND ...` conditions (empty string without filters) and their bind parameters."""
    parts, params = [], {}
    for i, f in enumerate(filters):
        name = f"{prefix}{i}"
        params[name] = f.value
        if f.op == "=":
            parts.append(f"{text_expr(f.key, alias)} = :{name}")
        elif f.op == "!=":
            parts.append(f"{text_expr(f.key, alias)} IS DISTINCT FROM :{name}")
        else:
            parts.append(f"{numeric_expr(f.key, alias)} {f.op} :{name}")
    return "".join(f" AND {p}" for p in parts), params


def parse_breakdown(raw: str | None, allowed_columns: tuple[str, ...] = COLUMN_BREAKDOWNS) -> str | None:
    """`os_name` (a column) or `properties.<key>`; returns the SQL expression over alias `e`."""
    if raw is None or raw == "":
        return None
    if raw in allowed_columns:
        return f"e.{raw}"
    if raw.startswith("properties.") and valid_key(raw[len("properties.") :]):
        return text_expr(raw[len("properties.") :])
    raise SegmentError({"breakdown": f"one of {', '.join(allowed_columns)} or properties.<key>"})


# --- the same conditions for ClickHouse (eventtrack/clickhouse.py keeps `properties` as Postgres's jsonb text) ---

# Numbers are compared as Decimal256 with this many decimals (Postgres compares numeric exactly: the two
# agree for numbers below 1e56 with at most 20 decimals; docs/scaling.md).
CLICKHOUSE_DECIMAL_SCALE = 20


# A promoted property's ClickHouse column (`eventtrack promote-property`): its type, by kind. The column is
# MATERIALIZED from the very expression a query would otherwise compute, so reading it gives the same values.
CLICKHOUSE_PROMOTED_TYPES = {"text": "Nullable(String)", "numeric": f"Nullable(Decimal256({CLICKHOUSE_DECIMAL_SCALE}))"}


def property_digest(key: str) -> str:
    """A short fixed name part for a key (keys may hold characters an identifier should not)."""
    return hashlib.md5(key.encode()).hexdigest()[:12]


def clickhouse_promoted_column(key: str, kind: str) -> str:
    """The ClickHouse column a promoted property is materialized in."""
    return f"p_{kind}_{property_digest(key)}"


def clickhouse_promoted_expr(key: str, kind: str) -> str:
    """What the promoted column holds: the text or numeric expression computed from the properties."""
    return clickhouse_text_expr(key) if kind == "text" else clickhouse_numeric_expr(key)


def clickhouse_text_expr(key: str, promoted: Collection[str] = ()) -> str:
    """What `properties ->> 'key'` gives, NULL when null or absent: the loader copies Postgres's own text of
    each property into `property_text` (ClickHouse would re-spell a number or object it parsed). `promoted`:
    the promoted columns the events table has; a promoted key is read from its column (one small column,
    not the whole map)."""
    _column(key, "")
    if (column := clickhouse_promoted_column(key, "text")) in promoted:
        return column
    return f"if(mapContains(property_text, '{key}'), property_text['{key}'], NULL)"


def clickhouse_numeric_expr(key: str, promoted: Collection[str] = ()) -> str:
    """The property as a decimal when it is a JSON number, else NULL (numeric_expr's rule)."""
    _column(key, "")
    if (column := clickhouse_promoted_column(key, "numeric")) in promoted:
        return column
    return (
        f"if(JSONType(properties, '{key}') IN ('Int64', 'UInt64', 'Double'), "
        f"toDecimal256OrNull(property_text['{key}'], {CLICKHOUSE_DECIMAL_SCALE}), NULL)"
    )


def clickhouse_filters_sql(
    filters: list[PropertyFilter], prefix: str = "pf", promoted: Collection[str] = ()
) -> tuple[str, dict[str, Any]]:
    """` AND ...` conditions for ClickHouse (`{name:Type}` binds) and their parameters: filters_sql's meaning.
    `promoted`: the promoted columns there are (eventtrack.clickhouse.promoted_columns)."""
    parts, params = [], {}
    for i, f in enumerate(filters):
        name = f"{prefix}{i}"
        params[name] = str(f.value)
        if f.op == "=":
            parts.append(f"{clickhouse_text_expr(f.key, promoted)} = {{{name}:String}}")
        elif f.op == "!=":
            text = clickhouse_text_expr(f.key, promoted)
            parts.append(f"({text} IS NULL OR {text} != {{{name}:String}})")
        else:
            value = f"toDecimal256({{{name}:String}}, {CLICKHOUSE_DECIMAL_SCALE})"
            parts.append(f"{clickhouse_numeric_expr(f.key, promoted)} {f.op} {value}")
    return "".join(f" AND {p}" for p in parts), params


def clickhouse_breakdown(raw: str | None, promoted: Collection[str] = ()) -> str | None:
    """parse_breakdown's choice (already checked by it) as a ClickHouse expression."""
    if not raw:
        return None
    if raw.startswith("properties."):
        return clickhouse_text_expr(raw[len("properties.") :], promoted)
    if raw in COLUMN_BREAKDOWNS:
        return raw
    raise SegmentError({"breakdown": f"one of {', '.join(COLUMN_BREAKDOWNS)} or properties.<key>"})
