-- Product analytics: funnel index, promoted event properties and saved funnels.

-- Funnels (ingest_api/admin/funnel_query.py): the users of a step-1 event type
-- in a range (index-only scan), and per user the earliest event of the next step
-- after a given instant (one probe). Built on every partition, existing and new.
CREATE INDEX IF NOT EXISTS events_event_type_distinct_id_timestamp_idx ON events (event_type, distinct_id, "timestamp");

-- Event properties with an expression index on `events` (created by
-- `eventtrack promote-property`, see ingest_api/promote.py). The index is the
-- source of truth; this table says which exist and of which type.
CREATE TABLE IF NOT EXISTS promoted_properties (
    key        text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('text', 'numeric')),
    index_name text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key, kind)
);

-- Funnels whose results the pipeline refreshes daily (dbt model analytics.funnel_results).
CREATE TABLE IF NOT EXISTS saved_funnels (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text        NOT NULL,
    steps          text[]      NOT NULL CHECK (cardinality(steps) BETWEEN 2 AND 10),
    window_seconds integer     NOT NULL CHECK (window_seconds > 0 AND window_seconds <= 90 * 86400),
    range_days     integer     NOT NULL DEFAULT 30 CHECK (range_days BETWEEN 1 AND 366),
    created_at     timestamptz NOT NULL DEFAULT now()
);
