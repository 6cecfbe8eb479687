"""How Dagster invokes dbt: dagster-dbt's DbtCliResource without the costs this project does not need.

Measured on 2 cores, every dbt invocation from Dagster paid, before any model ran:
- ~3.5 s for a `dbt --version` subprocess (dagster-dbt asks the executable its version);
- ~1.7 s to build an in-process dbt adapter, which only serves column metadata and
  row counts, and no asset here fetches either;
- ~4 s for a full parse: dbt reuses its partial parse only when the vars and the
  profile equal those of the parse that wrote it, and the manifest prepared at
  start-up is parsed without vars or a connection.
So each invocation starts from the partial parse the last invocation with the
same vars and connection left (`PartialParseCache`). dbt checks the file itself
and parses in full when it does not match, so a wrong guess costs time, never
correctness. Runs of a partition window have vars that change every run: they
are not cached.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource
from packaging import version

from orchestration.resources import PARTIAL_PARSE

# Partial parses kept (~0.7 MB each); every test database or connection adds a key.
KEPT_PARSES = 8
# Window vars (orchestration.partitions.window_vars) differ on every partitioned run.
_WINDOW_VARS = ("min_ts", "max_ts")
# The connection settings dbt's profile reads (dbt_project/profiles.yml).
_PROFILE_ENV_PREFIX = "EVENTTRACK_DB_"


class EventtrackDbtCli(DbtCliResource):
    """DbtCliResource for this project's own dbt-core (orchestration.resources.venv_executable)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        # The executable is the dbt-core installed in this environment: ask the package, not a subprocess.
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Any) -> None:
        # No in-process adapter: dagster-dbt skips column metadata and row counts without one.
        return None


def partial_parse_key(dbt_vars: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """Which cached partial parse an invocation with these vars can reuse; None for a partition window (pure)."""
    if any(name in dbt_vars for name in _WINDOW_VARS):
        return None
    profile_env = {name: value for name, value in environ.items() if name.startswith(_PROFILE_ENV_PREFIX)}
    blob = json.dumps({"vars": dbt_vars, "profile_env": profile_env}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class PartialParseCache:
    """One partial parse file per key, under the dbt project's target dir."""

    def __init__(self, target_dir: Path):
        self.target_dir = target_dir
        self.cache_dir = target_dir / "partial_parse_cache"

    def invocation_dir(self, label: str) -> Path:
        """A fresh target dir for one invocation (dagster-dbt records its results from there)."""
        return self.target_dir / f"{label}-{uuid.uuid4().hex[:12]}"

    def seed(self, invocation_dir: Path, key: str | None) -> None:
        cached = self.cache_dir / f"{key}.msgpack"
        if key is not None and cached.exists():
            invocation_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, invocation_dir / PARTIAL_PARSE)

    def keep(self, invocation_dir: Path, key: str | None) -> None:
        """Store the invocation's partial parse for the next one; a rename, so readers never see half a file."""
        produced = invocation_dir / PARTIAL_PARSE
        if key is None or not produced.exists():
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        scratch = self.cache_dir / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        shutil.copyfile(produced, scratch)
        os.replace(scratch, self.cache_dir / f"{key}.msgpack")
        self._prune()

    def _prune(self) -> None:
        """Keep the KEPT_PARSES most recently written; another process may be pruning too."""
        kept = sorted(self.cache_dir.glob("*.msgpack"), key=_mtime, reverse=True)
        for stale in kept[KEPT_PARSES:]:
            stale.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # pruned by another process meanwhile
        return 0.0
