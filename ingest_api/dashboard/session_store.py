"""Dashboard sessions kept in Postgres, so that signing out ends a session in every API worker.

A session's id is random and travels only in the signed cookie; the table keeps its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

_PURGE_EXPIRED = sa.text("DELETE FROM dashboard_sessions WHERE expires_at < now()")
_INSERT = sa.text(
    "INSERT INTO dashboard_sessions (id_sha256, admin_key_id, expires_at) VALUES (:id, :key_id, now() + :lifetime)"
)
_ACTIVE = sa.text(
    "SELECT 1 FROM dashboard_sessions WHERE id_sha256 = :id AND admin_key_id = :key_id AND expires_at > now()"
)
_DELETE = sa.text("DELETE FROM dashboard_sessions WHERE id_sha256 = :id")


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def open_session(engine: AsyncEngine, key_id: int, lifetime: timedelta) -> str:
    """A new session of the admin key `key_id`; returns its id (for the cookie)."""
    session_id = secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        await conn.execute(_PURGE_EXPIRED)
        await conn.execute(_INSERT, {"id": _digest(session_id), "key_id": key_id, "lifetime": lifetime})
    return session_id


async def session_open(engine: AsyncEngine, session_id: str, key_id: int) -> bool:
    async with engine.connect() as conn:
        return (await conn.execute(_ACTIVE, {"id": _digest(session_id), "key_id": key_id})).first() is not None


async def close_session(engine: AsyncEngine, session_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(_DELETE, {"id": _digest(session_id)})
