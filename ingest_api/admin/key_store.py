"""Admin keys and project write keys in Postgres (used by the command line; the API reads them through the
config cache). An admin key itself is not stored (its hash and first characters are); a write key is public."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from ingest_api.admin.keys import generate_admin_key, hash_key
from ingest_api.write_keys import generate_write_key

ADMIN_KEYS = "admin_api_keys"
WRITE_KEYS = "write_keys"


def create_admin_key(database_url: str, name: str) -> tuple[int, str]:
    """Returns (id, key). The key itself is not stored and cannot be shown again."""
    key = generate_admin_key()
    return _insert(database_url, ADMIN_KEYS, {"name": name, "key_hash": hash_key(key), "key_prefix": key[:12]}), key


def create_write_key(database_url: str, name: str) -> tuple[int, str]:
    key = generate_write_key()
    return _insert(database_url, WRITE_KEYS, {"name": name, "key": key}), key


def list_admin_keys(database_url: str) -> list[tuple]:
    """(id, name, key_prefix, created_at, revoked_at) per key, oldest first."""
    return _list(database_url, ADMIN_KEYS, "key_prefix")


def list_write_keys(database_url: str) -> list[tuple]:
    """(id, name, key, created_at, revoked_at) per key, oldest first."""
    return _list(database_url, WRITE_KEYS, "key")


def revoke_admin_key(database_url: str, key_id: int) -> bool:
    return _revoke(database_url, ADMIN_KEYS, key_id)


def revoke_write_key(database_url: str, key_id: int) -> bool:
    return _revoke(database_url, WRITE_KEYS, key_id)


def _insert(database_url: str, table: str, values: dict[str, Any]) -> int:
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    with psycopg.connect(database_url) as conn:
        (key_id,) = conn.execute(query, tuple(values.values())).fetchone()
    return key_id


def _list(database_url: str, table: str, shown: str) -> list[tuple]:
    query = sql.SQL("SELECT id, name, {}, created_at, revoked_at FROM {} ORDER BY id").format(
        sql.Identifier(shown), sql.Identifier(table)
    )
    with psycopg.connect(database_url) as conn:
        return conn.execute(query).fetchall()


def _revoke(database_url: str, table: str, key_id: int) -> bool:
    """Whether an active key had this id (it is revoked now)."""
    query = sql.SQL("UPDATE {} SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id").format(
        sql.Identifier(table)
    )
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, (key_id,)).fetchone() is not None
