"""Prometheus metrics of one API process, served at GET /metrics.

Each process has its own registry (with several uvicorn workers, scrape each
or sum them: see docs/operations.md). Nothing here holds payloads or keys.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from eventtrack.streaming.destinations import Stats

_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_accepted = Counter(
            "eventtrack_events_accepted", "Events acknowledged (stored or duplicates of stored ones)", registry=r
        )
        self.events_deduplicated = Counter(
            "eventtrack_events_deduplicated", "Acknowledged events that were already stored (same uuid)", registry=r
        )
        self.events_rejected = Counter(
            "eventtrack_events_rejected", "Refusals kept in the dead-letter table, by reason", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "eventtrack_batch_size_events", "Events per batch request", buckets=_SIZE_BUCKETS, registry=r
        )
        self.group_commit_rows = Histogram(
            "eventtrack_group_commit_rows",
            "Rows written per group-commit transaction",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.group_commit_seconds = Histogram(
            "eventtrack_group_commit_seconds", "Duration of a group-commit transaction", registry=r
        )
        self.queue_depth = Gauge("eventtrack_sink_queue_depth", "Requests waiting for the writer", registry=r)
        self.responses = Counter("eventtrack_http_responses", "HTTP responses by status code", ["status"], registry=r)
        self.overloaded = Counter(
            "eventtrack_sink_overloaded", "Writes refused (503) because the queue was full", registry=r
        )
        self.database_errors = Counter(
            "eventtrack_database_errors", "Failed database operations of the writer", registry=r
        )
        self.client_disconnects = Counter(
            "eventtrack_client_disconnects",
            "Requests whose client closed the connection before the body was complete",
            registry=r,
        )

        self.streams_open = Gauge("eventtrack_streams_open", "Live-tail streams open on this process", registry=r)
        self.stream_slow_consumers = Counter(
            "eventtrack_stream_slow_consumers",
            "Live-tail streams cut off because their client stopped reading",
            registry=r,
        )

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def destination_metrics(stats: list[Stats]) -> bytes:
    """The webhook destinations' figures (docs/operations.md "Streaming"). They come from the database, so
    every worker shows the same values: take one worker's (or max), do not sum them."""
    families = {
        "lag_events": GaugeMetricFamily(
            "eventtrack_destination_lag_events",
            "Matching events after the destination's cursor",
            labels=["destination"],
        ),
        "lag_seconds": GaugeMetricFamily(
            "eventtrack_destination_lag_seconds",
            "Age of the oldest event waiting for the destination (0: none waits)",
            labels=["destination"],
        ),
        "paused": GaugeMetricFamily(
            "eventtrack_destination_paused", "1 when the destination is paused", labels=["destination"]
        ),
        "delivered_events": CounterMetricFamily(
            "eventtrack_destination_delivered_events", "Events the receiver acknowledged (2xx)", labels=["destination"]
        ),
        "delivered_batches": CounterMetricFamily(
            "eventtrack_destination_delivered_batches", "Batches the receiver acknowledged", labels=["destination"]
        ),
        "failed_attempts": CounterMetricFamily(
            "eventtrack_destination_failed_attempts",
            "Delivery attempts that failed (errors, timeouts, non-2xx answers)",
            labels=["destination"],
        ),
        "dead_lettered_events": CounterMetricFamily(
            "eventtrack_destination_dead_lettered_events",
            "Events in batches the receiver refused for good (4xx)",
            labels=["destination"],
        ),
    }
    for s in stats:
        label = [str(s.id)]
        families["lag_events"].add_metric(label, s.lag.events)
        families["lag_seconds"].add_metric(label, s.lag.seconds)
        families["paused"].add_metric(label, 1 if s.paused else 0)
        for name in ("delivered_events", "delivered_batches", "failed_attempts", "dead_lettered_events"):
            families[name].add_metric(label, getattr(s, name))

    class _Snapshot:
        def collect(self):
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot())
    return generate_latest(registry)
