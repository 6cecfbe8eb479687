-- Erasures (privacy) waiting to be applied to ClickHouse, when one is configured (docs/scaling.md):
-- written in the erasure's own transaction, applied and deleted by the next ClickHouse load
-- (eventtrack/clickhouse.py). The ids stay here only until then, as the events themselves did.
CREATE TABLE IF NOT EXISTS clickhouse_erasures (
    id           bigserial   PRIMARY KEY,
    distinct_ids text[]      NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
