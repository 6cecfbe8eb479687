"""In-process cache of feature flags, admin keys and write keys, refreshed when they change.

Each worker polls one small row (`config_versions`) every half second and
reloads only what moved, so a flag evaluation or an admin key check never
queries the database, and a change is seen by every worker within a second.
When the database is unreachable the last loaded state keeps being served.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest_api.flags.answers import ForUserAnswers
from ingest_api.flags.definition import FlagDefinition, flag_from_row
from ingest_api.flags.evaluator import CompiledFlag

log = logging.getLogger(__name__)

FLAG_COLUMNS = (
    "id", "key", "name", "description", "active", "rollout_percentage",
    "variants", "conditions", "payload", "version", "created_at", "updated_at",
)  # fmt: skip


_JSONB_COLUMNS = ("variants", "conditions", "payload")


def flag_json(row: Any) -> dict[str, Any]:
    """A stored flag as the API shows it. Its jsonb values are read as a request body is (orjson): jsonb keeps
    a number like 1e30 as the integer 1000...0, which would come back as a Python int no JSON answer of the
    flag endpoints can write; read again, it is the double the flag was saved with."""
    data = {c: getattr(row, c) for c in FLAG_COLUMNS}
    for column in _JSONB_COLUMNS:
        data[column] = orjson.loads(json.dumps(data[column]))
    data["created_at"] = data["created_at"].isoformat()
    data["updated_at"] = data["updated_at"].isoformat()
    return data


@dataclass(frozen=True)
class CachedFlag:
    data: dict[str, Any]  # API form
    definition: FlagDefinition
    compiled: CompiledFlag  # what evaluations run: compiled once per load

    @classmethod
    def of(cls, data: dict[str, Any]) -> CachedFlag:
        definition = flag_from_row(data)
        return cls(data, definition, CompiledFlag(definition))


def for_user_answers(flags: tuple[CachedFlag, ...]) -> ForUserAnswers:
    return ForUserAnswers([(f.data["key"], f.data["active"], f.compiled) for f in flags])


@dataclass
class ConfigSnapshot:
    flags: tuple[CachedFlag, ...] = ()
    flags_by_id: dict[int, CachedFlag] = field(default_factory=dict)
    for_user: ForUserAnswers = field(default_factory=lambda: ForUserAnswers(()))  # per flags load, see its module
    admin_keys: tuple[tuple[bytes, int], ...] = ()
    write_keys: frozenset[str] = frozenset()  # active project write keys; empty: capture is open
    loaded: bool = False


class ConfigCache:
    def __init__(self, engine: AsyncEngine, poll_seconds: float = 0.5):
        self._engine = engine
        self._poll_seconds = poll_seconds
        self._versions: dict[str, int] = {}
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.snapshot = ConfigSnapshot()

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # the poller retries; flag routes answer 503 until loaded
            log.warning("config not loaded at start: %s", exc)
        self._task = asyncio.create_task(self._poll(), name="config-cache")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.refresh()
            except Exception as exc:
                log.debug("config refresh failed: %s", exc)

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            async with self._engine.connect() as conn:
                versions = dict((await conn.execute(sa.text("SELECT name, version FROM config_versions"))).all())
                snap = self.snapshot
                flags, for_user, keys, write_keys = snap.flags, snap.for_user, snap.admin_keys, snap.write_keys
                if force or versions.get("feature_flags") != self._versions.get("feature_flags"):
                    rows = (
                        await conn.execute(sa.text(f"SELECT {', '.join(FLAG_COLUMNS)} FROM feature_flags ORDER BY id"))
                    ).all()
                    flags = tuple(CachedFlag.of(flag_json(r)) for r in rows)
                    for_user = for_user_answers(flags)
                if force or versions.get("admin_api_keys") != self._versions.get("admin_api_keys"):
                    rows = (
                        await conn.execute(sa.text("SELECT key_hash, id FROM admin_api_keys WHERE revoked_at IS NULL"))
                    ).all()
                    keys = tuple((bytes(r.key_hash), r.id) for r in rows)
                if force or versions.get("write_keys") != self._versions.get("write_keys"):
                    rows = (await conn.execute(sa.text("SELECT key FROM write_keys WHERE revoked_at IS NULL"))).all()
                    write_keys = frozenset(r.key for r in rows)
            self._versions = versions
            self.snapshot = ConfigSnapshot(
                flags=flags,
                flags_by_id={f.data["id"]: f for f in flags},
                for_user=for_user,
                admin_keys=keys,
                write_keys=write_keys,
                loaded=True,
            )
