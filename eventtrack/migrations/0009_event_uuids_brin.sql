-- event_uuids.received_at is read only by range (retention's prune, the dashboard's "accepted since"), and
-- rows arrive in received_at order: a BRIN index answers those ranges and costs the ingest nothing per
-- row, where the B-tree cost Postgres one more index insertion for every event (docs/performance.md).
DROP INDEX IF EXISTS event_uuids_received_at_idx;
CREATE INDEX IF NOT EXISTS event_uuids_received_at_brin ON event_uuids USING brin (received_at);
