"""The Anomalies page's series: one event type's judged hours over the last days, hour by hour (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest_api.dashboard.overview import hour_buckets, hour_label

HOURS_SHOWN = 7 * 24


@dataclass(frozen=True)
class BandSeries:
    labels: list[str]
    actual: list[float | None]
    lower: list[float | None]
    upper: list[float | None]
    anomalies: list[float | None]  # the count at an anomaly, None elsewhere


def band_series(judged: Mapping[datetime, Any], now: datetime, hours: int = HOURS_SHOWN) -> BandSeries:
    """The last `hours` UTC hours: counts and band where judged (gaps elsewhere: not judged, or not yet)."""
    buckets = hour_buckets(now, hours)
    rows = [judged.get(hour) for hour in buckets]
    return BandSeries(
        labels=[hour_label(hour) for hour in buckets],
        actual=[r.actual if r else None for r in rows],
        lower=[round(r.lower_bound, 1) if r else None for r in rows],
        upper=[round(r.upper_bound, 1) if r else None for r in rows],
        anomalies=[r.actual if r and r.severity else None for r in rows],
    )
