"""Persons: properties set by events ($set, $set_once) and ids merged by $identify / $create_alias.

Written right after the events of the request are committed, only when some
accepted event carries a person change (most events do not: no cost for them).
A retried request re-applies the same changes, which leaves the same result.

- `$set` overwrites, `$set_once` only fills properties the person does not have;
- `$identify` with `$anon_distinct_id` (and `$create_alias` with `alias`) maps the
  other id to the person in `person_distinct_ids`; the anonymous person's
  properties are merged under the identified person's (who wins on conflicts)
  and its row removed. An id already merged into someone is not merged again.
- changes from later events to an alias land on the person it maps to.

Person writes of all workers are serialised by one transaction-level advisory
lock: they are rare, and this keeps two merges from deadlocking each other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from eventtrack.errors import unavailable
from ingest_api.posthog.translate import PersonUpdate
from ingest_api.validation import check_json_tree

log = logging.getLogger(__name__)

_LOCK = sa.text("SELECT pg_advisory_xact_lock(7311042002)")
_RESOLVE = sa.text("SELECT distinct_id FROM person_distinct_ids WHERE alias = :id")
_UPSERT = sa.text(
    """
    INSERT INTO persons (distinct_id, properties, first_seen, last_seen)
    VALUES (:id, CAST(:set_once AS jsonb) || CAST(:set AS jsonb), :ts, :ts)
    ON CONFLICT (distinct_id) DO UPDATE SET
        properties = CAST(:set_once AS jsonb) || persons.properties || CAST(:set AS jsonb),
        first_seen = least(persons.first_seen, excluded.first_seen),
        last_seen = greatest(persons.last_seen, excluded.last_seen),
        updated_at = now()
    """
)
_MERGE_PROPERTIES = sa.text(
    """
    UPDATE persons p SET
        properties = a.properties || p.properties,
        first_seen = least(p.first_seen, a.first_seen),
        last_seen = greatest(p.last_seen, a.last_seen),
        updated_at = now()
    FROM persons a
    WHERE p.distinct_id = :id AND a.distinct_id = :other
    """
)
_DROP_MERGED = sa.text("DELETE FROM persons WHERE distinct_id = :other")
_REPOINT = sa.text("UPDATE person_distinct_ids SET distinct_id = :id WHERE distinct_id = :other")
_ALIAS = sa.text(
    "INSERT INTO person_distinct_ids (alias, distinct_id) VALUES (:other, :id) ON CONFLICT (alias) DO NOTHING"
)


def _jsonb(value: dict) -> str:
    cleaned = check_json_tree(value, 32, True)  # strips NUL and lone surrogates, which jsonb refuses
    return orjson.dumps(cleaned if isinstance(cleaned, dict) else {}).decode()


async def apply_person_updates(state, updates: Sequence[PersonUpdate]) -> None:
    """Applies the changes in event-time order, in one transaction; 503 when the database fails."""
    try:
        async with state.engine.begin() as conn:
            await conn.execute(_LOCK)
            for update in sorted(updates, key=lambda u: u.timestamp):
                person = (await conn.execute(_RESOLVE, {"id": update.distinct_id})).scalar() or update.distinct_id
                await conn.execute(
                    _UPSERT,
                    {
                        "id": person,
                        "set": _jsonb(update.set),
                        "set_once": _jsonb(update.set_once),
                        "ts": update.timestamp,
                    },
                )
                if update.merge_from is None:
                    continue
                already = (await conn.execute(_RESOLVE, {"id": update.merge_from})).scalar()
                if already is not None or update.merge_from == person:
                    continue  # merged before (into this person or another): left as it is
                params = {"id": person, "other": update.merge_from}
                await conn.execute(_MERGE_PROPERTIES, params)
                await conn.execute(_DROP_MERGED, params)
                await conn.execute(_REPOINT, params)
                await conn.execute(_ALIAS, params)
    except (DBAPIError, OSError, TimeoutError) as exc:
        log.warning("person updates not written: %s", exc)
        raise unavailable(state.settings.retry_after_seconds) from None
