"""Admin keys in Postgres (used by the command line; the API reads them through the config cache)."""

from __future__ import annotations

import psycopg

from ingest_api.admin.keys import generate_admin_key, hash_key


def create_admin_key(database_url: str, name: str) -> tuple[int, str]:
    """Returns (id, key). The key itself is not stored and cannot be shown again."""
    key = generate_admin_key()
    with psycopg.connect(database_url) as conn:
        (key_id,) = conn.execute(
            "INSERT INTO admin_api_keys (name, key_hash, key_prefix) VALUES (%s, %s, %s) RETURNING id",
            (name, hash_key(key), key[:12]),
        ).fetchone()
    return key_id, key


def list_admin_keys(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT id, name, key_prefix, created_at, revoked_at FROM admin_api_keys ORDER BY id"
        ).fetchall()


def revoke_admin_key(database_url: str, key_id: int) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "UPDATE admin_api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id", (key_id,)
        ).fetchone()
    return row is not None
