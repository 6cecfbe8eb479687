"""The SQL of the privacy operations: who a distinct_id is, erasing them, reading their data, the audit log.

A person is every id that points to the same row of `persons`: the id itself,
the person it was merged into (`person_distinct_ids`), and every other id
merged into that person. Erasing or exporting any of them covers all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from eventtrack.uuid7 import uuid7
from ingest_api.privacy.dead_letters import payload_mentions, sql_needles

# The persons writers' lock (ingest_api/persons.py): no merge moves ids while a person is erased.
_PERSONS_LOCK = sa.text("SELECT pg_advisory_xact_lock(7311042002)")
PAGE_ROWS = 1000


@dataclass(frozen=True)
class Actor:
    """The admin key that made a request: its id and name, never the key."""

    key_id: int | None
    name: str | None


def subject_hash(distinct_id: str) -> str:
    return hashlib.sha256(distinct_id.encode("utf-8", "surrogatepass")).hexdigest()


async def person_ids(conn: AsyncConnection, distinct_id: str) -> tuple[str, list[str]]:
    """(the person's distinct_id, every id of the person, the person's first)."""
    person = (
        await conn.execute(
            sa.text("SELECT distinct_id FROM person_distinct_ids WHERE alias = :id"), {"id": distinct_id}
        )
    ).scalar() or distinct_id
    aliases = (
        (
            await conn.execute(
                sa.text("SELECT alias FROM person_distinct_ids WHERE distinct_id = :p ORDER BY alias"), {"p": person}
            )
        )
        .scalars()
        .all()
    )
    return person, [person, *(a for a in aliases if a != person)]


CLICKHOUSE_ERASURE = "queued: deleted from ClickHouse by its next load"
_ERASE_EVENTS = sa.text(
    """
    WITH gone AS (
        DELETE FROM events WHERE distinct_id = ANY(:ids) RETURNING "timestamp"
    )
    SELECT date_trunc('hour', "timestamp", 'UTC') AS hour, count(*) AS n FROM gone GROUP BY 1 ORDER BY 1
    """
)
# Queued last, just before the commit: the requests take their numbers from the
# events' sequence, and a number taken long before its commit could fall behind
# the aggregates' watermark unseen (the settle delay, docs/analytics.md).
_QUEUE_REBUILDS = sa.text(
    "INSERT INTO aggregate_rebuilds (bucket_at, reason) SELECT hour, 'erasure' FROM unnest(CAST(:hours AS timestamptz[])) AS hour"
)


async def erase_person(conn: AsyncConnection, distinct_id: str, actor: Actor, *, clickhouse: bool) -> dict[str, Any]:
    """Deletes every row of the person in one transaction (the caller's) and writes the audit row in it.

    With ClickHouse configured, its copy of the events is erased by the next load (queued here, in the
    same transaction, so an erasure is never lost between the two)."""
    await conn.execute(_PERSONS_LOCK)
    person, ids = await person_ids(conn, distinct_id)
    params = {"ids": ids}
    hours = (await conn.execute(_ERASE_EVENTS, params)).all()
    deleted = {
        "events": sum(h.n for h in hours),
        "sessions": await _delete(conn, "DELETE FROM sessions WHERE distinct_id = ANY(:ids)", params),
        "persons": await _delete(conn, "DELETE FROM persons WHERE distinct_id = ANY(:ids)", params),
        "person_distinct_ids": await _delete(
            conn, "DELETE FROM person_distinct_ids WHERE alias = ANY(:ids) OR distinct_id = ANY(:ids)", params
        ),
        "rejected_events": 0,
    }
    deleted["churn_scores"], deleted["churn_features"] = await _erase_churn_rows(conn, params)
    letters = [row_id async for row_id, _ in _matching_dead_letters(conn, ids, columns="id")]
    for start in range(0, len(letters), PAGE_ROWS):
        deleted["rejected_events"] += await _delete(
            conn, "DELETE FROM rejected_events WHERE id = ANY(:ids)", {"ids": letters[start : start + PAGE_ROWS]}
        )
    if hours:
        await conn.execute(_QUEUE_REBUILDS, {"hours": [h.hour for h in hours]})
    if clickhouse:
        await conn.execute(sa.text("INSERT INTO clickhouse_erasures (distinct_ids) VALUES (:ids)"), params)
    result = {
        "distinct_id": distinct_id,
        "person_distinct_id": person,
        "distinct_ids": ids,
        "deleted": deleted,
        "aggregate_buckets_queued": len(hours),
    }
    if clickhouse:
        result["clickhouse"] = CLICKHOUSE_ERASURE
    # The audit row keeps counts, never the ids themselves (see the migration).
    result["audit_id"] = await write_audit(
        conn,
        actor,
        "erase_person",
        distinct_id,
        {
            "deleted": deleted,
            "distinct_ids": len(ids),
            "aggregate_buckets_queued": len(hours),
            **({"clickhouse": CLICKHOUSE_ERASURE} if clickhouse else {}),
        },
    )
    return result


# The churn tables with a person's rows (dbt tables: docs/analytics.md "Churn risk"), once the pipeline built them.
CHURN_SCORE_TABLES = ("analytics.user_churn_scores",)
CHURN_FEATURE_TABLES = ("analytics.fct_user_churn_features", "analytics_intermediate.int_user_activity_daily")


async def _erase_churn_rows(conn: AsyncConnection, params: dict[str, Any]) -> tuple[int, int]:
    """The person's churn scores, and their features and daily activity rows (counted together)."""
    counts = []
    for tables in (CHURN_SCORE_TABLES, CHURN_FEATURE_TABLES):
        n = 0
        for table in tables:
            if (await conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})).scalar_one():
                n += await _delete(conn, f"DELETE FROM {table} WHERE distinct_id = ANY(:ids)", params)
        counts.append(n)
    return counts[0], counts[1]


async def _delete(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> int:
    return (await conn.execute(sa.text(sql), params)).rowcount


async def write_audit(
    conn: AsyncConnection, actor: Actor, action: str, distinct_id: str, details: dict[str, Any]
) -> str:
    audit_id = uuid7()
    await conn.execute(
        sa.text(
            "INSERT INTO audit_log (id, admin_key_id, admin_key_name, action, subject_sha256, details)"
            " VALUES (:id, :key_id, :key_name, :action, :subject, CAST(:details AS jsonb))"
        ),
        {
            "id": audit_id,
            "key_id": actor.key_id,
            "key_name": actor.name,
            "action": action,
            "subject": subject_hash(distinct_id),
            "details": orjson.dumps(details).decode(),
        },
    )
    return str(audit_id)


async def actor_for(conn: AsyncConnection, key_id: int | None) -> Actor:
    name = None
    if key_id is not None:
        name = (await conn.execute(sa.text("SELECT name FROM admin_api_keys WHERE id = :id"), {"id": key_id})).scalar()
    return Actor(key_id, name)


# --- dead letters ------------------------------------------------------------------

# Candidates: payloads holding an id's bytes, and those that may be encoded
# (not starting with JSON), which only Python can decode; payload_mentions decides.
_DEAD_LETTER_CANDIDATES = """
SELECT {columns}, payload FROM rejected_events
WHERE id > :after AND (
    position(CAST(:n0 AS bytea) IN payload) > 0 {more_needles}
    OR substring(ltrim(payload, '\\x20090a0d'::bytea) FROM 1 FOR 1) NOT IN ('\\x7b'::bytea, '\\x5b'::bytea)
)
ORDER BY id LIMIT {limit}
"""


async def _matching_dead_letters(
    conn: AsyncConnection, ids: list[str], *, columns: str
) -> AsyncIterator[tuple[Any, Any]]:
    """(row, payload) of each dead letter of the person, in id order, read page by page."""
    needles = sql_needles(ids)
    params: dict[str, Any] = {f"n{i}": n for i, n in enumerate(needles)}
    more = " ".join(f"OR position(CAST(:n{i} AS bytea) IN payload) > 0" for i in range(1, len(needles)))
    select_id = columns if columns == "id" else f"id, {columns}"
    sql = sa.text(_DEAD_LETTER_CANDIDATES.format(columns=select_id, more_needles=more, limit=PAGE_ROWS))
    after = 0
    while True:
        rows = (await conn.execute(sql, {**params, "after": after})).all()
        for row in rows:
            if payload_mentions(bytes(row.payload), ids):
                yield (row.id if columns == "id" else row), row.payload
        if len(rows) < PAGE_ROWS:
            return
        after = rows[-1].id


# --- export ---------------------------------------------------------------------------

_EVENT_COLUMNS = (
    "uuid, event_type, distinct_id, properties, device_id, session_id, app_version, os_name, os_version,"
    ' "timestamp", client_timestamp, sent_at, received_at'
)
_SESSION_COLUMNS = "session_id, distinct_id, device_id, app_version, os_name, os_version, properties, started_at, ended_at, end_reason, created_at"
_LETTER_COLUMNS = "id, received_at, endpoint, reason, detail, fields, event_index, payload_bytes, payload_truncated, remote_addr, replayed_at"


async def export_counts(conn: AsyncConnection, ids: list[str]) -> dict[str, int]:
    row = (
        await conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM events WHERE distinct_id = ANY(:ids)) AS events,"
                " (SELECT count(*) FROM sessions WHERE distinct_id = ANY(:ids)) AS sessions"
            ),
            {"ids": ids},
        )
    ).one()
    return {"events": row.events, "sessions": row.sessions}


_PERSON = sa.text(
    "SELECT distinct_id, properties, first_seen, last_seen, updated_at FROM persons WHERE distinct_id = :p"
)
_MERGED_IDS = sa.text(
    "SELECT alias, distinct_id, created_at FROM person_distinct_ids WHERE distinct_id = :p ORDER BY alias"
)


async def person_rows(conn: AsyncConnection, person: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The person's row (None when it has none) and the ids merged into it."""
    found = (await conn.execute(_PERSON, {"p": person})).first()
    merged = (await conn.execute(_MERGED_IDS, {"p": person})).all()
    return (dict(found._mapping) if found else None), [dict(r._mapping) for r in merged]


def event_pages(conn: AsyncConnection, ids: list[str]) -> AsyncIterator[list[dict[str, Any]]]:
    """The person's events in pages of PAGE_ROWS, oldest first."""
    return _pages(conn, ids, f"SELECT {_EVENT_COLUMNS} FROM events", ("timestamp", "uuid"))


def session_pages(conn: AsyncConnection, ids: list[str]) -> AsyncIterator[list[dict[str, Any]]]:
    """The person's sessions in pages of PAGE_ROWS, oldest first."""
    return _pages(conn, ids, f"SELECT {_SESSION_COLUMNS} FROM sessions", ("started_at", "session_id"))


async def _pages(
    conn: AsyncConnection, ids: list[str], select: str, order: tuple[str, str]
) -> AsyncIterator[list[dict[str, Any]]]:
    """The rows of `select` whose distinct_id is one of `ids`, in pages of PAGE_ROWS (keyset on `order`)."""
    keys = ", ".join(f'"{column}"' for column in order)
    sql = f"{select} WHERE distinct_id = ANY(:ids)"
    after: dict[str, Any] = {}
    while True:
        where = f" AND ({keys}) > (:after_0, :after_1)" if after else ""
        rows = (
            await conn.execute(sa.text(f"{sql}{where} ORDER BY {keys} LIMIT {PAGE_ROWS}"), {"ids": ids, **after})
        ).all()
        if rows:
            yield [dict(r._mapping) for r in rows]
        if len(rows) < PAGE_ROWS:
            return
        after = {f"after_{i}": rows[-1]._mapping[column] for i, column in enumerate(order)}


async def dead_letters_of(conn: AsyncConnection, ids: list[str]) -> AsyncIterator[tuple[dict[str, Any], bytes]]:
    async for row, payload in _matching_dead_letters(conn, ids, columns=_LETTER_COLUMNS):
        yield {k: v for k, v in row._mapping.items() if k != "payload"}, bytes(payload)
