"""What the running app holds: settings, the sink and the database engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from ingest_api.config_cache import ConfigCache
from ingest_api.partitions import retention_cutoff
from ingest_api.settings import Settings
from ingest_api.sink import EventSink
from ingest_api.validation import Limits


@dataclass
class AppState:
    settings: Settings
    sink: EventSink
    engine: AsyncEngine
    config: ConfigCache

    def limits(self, now: datetime) -> Limits:
        s = self.settings
        return Limits(
            max_event_bytes=s.max_event_bytes,
            max_properties_depth=s.max_properties_depth,
            max_future=timedelta(hours=s.max_future_skew_hours),
            oldest_allowed=retention_cutoff(now, s.events_retention_days),
        )
