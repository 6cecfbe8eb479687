"""Prometheus metrics of one API process, served at GET /metrics.

Each process has its own registry (with several uvicorn workers, scrape each
or sum them: see docs/operations.md). Nothing here holds payloads or keys.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
