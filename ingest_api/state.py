"""What the running app holds: settings, the sink, the database engine and the config cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import HTTPConnection

from eventtrack import clickhouse
from eventtrack.errors import unavailable
from eventtrack.partitions import retention_cutoff, utc_day
from eventtrack.settings import Settings
from eventtrack.streaming.horizon import HorizonWatch
from ingest_api.config_cache import ConfigCache, ConfigSnapshot
from ingest_api.sink import EventSink
from ingest_api.validation import Limits


@dataclass
class AppState:
    settings: Settings
    sink: EventSink
    engine: AsyncEngine
    config: ConfigCache
    horizon: HorizonWatch
    _limits: tuple[date, Limits] | None = field(default=None, init=False, repr=False)
    _clickhouse: tuple[Any, clickhouse.Target] | None = field(default=None, init=False, repr=False)

    def clickhouse(self) -> tuple[Any, clickhouse.Target] | None:
        """The ClickHouse client and target when CLICKHOUSE_URL is set (connected on first use), else None."""
        if not self.settings.clickhouse_url:
            return None
        if self._clickhouse is None:
            target = clickhouse.Target.parse(self.settings.clickhouse_url, self.settings.clickhouse_cluster)
            self._clickhouse = (clickhouse.connect(target), target)
        return self._clickhouse

    def limits(self, now: datetime) -> Limits:
        """The validation limits at `now`. Only the retention cutoff moves, once a UTC day: they are built
        once a day rather than once a request (the capture hot path)."""
        day = utc_day(now)
        if self._limits is not None and self._limits[0] == day:
            return self._limits[1]
        s = self.settings
        limits = Limits(
            max_event_bytes=s.max_event_bytes,
            max_properties_depth=s.max_properties_depth,
            max_future=timedelta(hours=s.max_future_skew_hours),
            oldest_allowed=retention_cutoff(now, s.events_retention_days),
        )
        self._limits = (day, limits)
        return limits


FLAGS_NOT_LOADED = "Feature flags not loaded yet; retry."  # the 503 of the flag endpoints (native, PostHog, OFREP)


def loaded_snapshot(request: HTTPConnection, detail: str = "Configuration not loaded yet; retry.") -> ConfigSnapshot:
    """The app's config snapshot (flags, admin keys, write keys); 503 with Retry-After until its first load."""
    state: AppState = request.app.state.eventtrack
    snapshot = state.config.snapshot
    if not snapshot.loaded:
        raise unavailable(state.settings.retry_after_seconds, detail)
    return snapshot
