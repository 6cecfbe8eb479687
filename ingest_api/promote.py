"""Custom property indexing: an expression index on `events` for one property (`eventtrack promote-property`).

The index expression is exactly what the filters of eventtrack/analytics/segments.py
render, so the planner can use it for `properties.<key>=...` (text) or
`properties.<key>>=...` (numeric). `events` is partitioned: the index is made
on the parent only (ON ONLY, instant), then built on each partition with
CONCURRENTLY (inserts go on) and attached; once every partition has it the
parent index is valid, and partitions created later get it automatically.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from eventtrack.analytics.segments import numeric_expr, property_digest, text_expr, valid_key

KINDS = ("text", "numeric")


def index_name(key: str, kind: str) -> str:
    return f"events_prop_{kind}_{property_digest(key)}"


def index_expression(key: str, kind: str) -> str:
    return text_expr(key, alias="") if kind == "text" else numeric_expr(key, alias="")


def promote_property(database_url: str, key: str, kind: str = "text") -> tuple[str, int]:
    """Creates (or completes) the index and records the property. Returns (index name, partitions indexed now)."""
    if not valid_key(key):
        raise ValueError("property key: 1-100 characters of letters, digits, _ $ . : -")
    if kind not in KINDS:
        raise ValueError("kind must be text or numeric")
    name, expr = index_name(key, kind), sql.SQL(index_expression(key, kind))  # expr: key checked by valid_key above
    built = 0
    with psycopg.connect(database_url, autocommit=True) as conn:  # CONCURRENTLY cannot run in a transaction
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON ONLY events ({})").format(sql.Identifier(name), expr))
        partitions = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'events'::regclass ORDER BY c.relname"
        )]  # fmt: skip
        attached = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass", (name,)
        )}  # fmt: skip
        for partition in partitions:
            child = f"{name}_{partition}"[:63]
            if child in attached:
                continue
            conn.execute(
                sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})").format(
                    sql.Identifier(child), sql.Identifier(partition), expr
                )
            )
            conn.execute(
                sql.SQL("ALTER INDEX {} ATTACH PARTITION {}").format(sql.Identifier(name), sql.Identifier(child))
            )
            built += 1
        conn.execute(
            "INSERT INTO promoted_properties (key, kind, index_name) VALUES (%s, %s, %s) ON CONFLICT (key, kind) DO UPDATE"
            " SET index_name = EXCLUDED.index_name",
            (key, kind, name),
        )
    return name, built


def list_promoted(database_url: str) -> list[tuple[str, str, str, bool]]:
    """(key, kind, index name, index valid) for every promoted property."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT p.key, p.kind, p.index_name, coalesce(x.indisvalid, false) FROM promoted_properties p"
            " LEFT JOIN pg_class c ON c.relname = p.index_name LEFT JOIN pg_index x ON x.indexrelid = c.oid ORDER BY p.key, p.kind"
        ).fetchall()
