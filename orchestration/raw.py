"""The raw tables of the ingest service, as upstream assets Dagster does not materialize.

Keys match the dbt source `eventtrack` (dagster-dbt names a source table
[source_name, table_name]), so lineage reads raw -> staging -> marts.
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec

EVENTS = AssetKey(["eventtrack", "events"])
SESSIONS = AssetKey(["eventtrack", "sessions"])
EVENT_UUIDS = AssetKey(["eventtrack", "event_uuids"])
REJECTED_EVENTS = AssetKey(["eventtrack", "rejected_events"])
AGGREGATE_REBUILDS = AssetKey(["eventtrack", "aggregate_rebuilds"])

_DESCRIPTIONS = {
    EVENTS: "Accepted events, partitioned by UTC day; written by the ingest API.",
    SESSIONS: "Explicit sessions; written by the ingest API, closed on timeout by maintenance/session_closure.",
    EVENT_UUIDS: "Uuids of accepted events, for deduplication at ingest.",
    REJECTED_EVENTS: "Dead letters: refused requests and events.",
    AGGREGATE_REBUILDS: "Aggregate buckets to rebuild after an erasure deleted events; written by the ingest API.",
}

raw_table_specs = [
    AssetSpec(key=key, description=text, group_name="raw", kinds={"postgres"}, metadata={"owner": "ingest_api"})
    for key, text in _DESCRIPTIONS.items()
]
