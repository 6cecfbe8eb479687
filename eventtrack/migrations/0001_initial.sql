-- Raw tables owned by the ingest service. The pipeline (dbt) reads them; it
-- writes them only through the documented maintenance operations.

CREATE SEQUENCE IF NOT EXISTS events_ingest_seq AS bigint;

-- One row per accepted event, partitioned by UTC day of the corrected timestamp
-- so that retention is a DROP of whole partitions.
CREATE TABLE IF NOT EXISTS events (
    uuid             uuid        NOT NULL,
    event_type       text        NOT NULL,
    distinct_id      text        NOT NULL,
    properties       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    device_id        text,
    session_id       text,
    app_version      text,
    os_name          text,
    os_version       text,
    "timestamp"      timestamptz NOT NULL,
    client_timestamp timestamptz,
    sent_at          timestamptz,
    received_at      timestamptz NOT NULL,
    -- Arrival order: incremental models select rows by this, not by event time.
    ingest_seq       bigint      NOT NULL DEFAULT nextval('events_ingest_seq')
) PARTITION BY RANGE ("timestamp");

CREATE INDEX IF NOT EXISTS events_timestamp_idx ON events ("timestamp");
CREATE INDEX IF NOT EXISTS events_distinct_id_timestamp_idx ON events (distinct_id, "timestamp");
CREATE INDEX IF NOT EXISTS events_event_type_timestamp_idx ON events (event_type, "timestamp");
CREATE INDEX IF NOT EXISTS events_session_id_idx ON events (session_id);
-- Cheap on insert; ingest_seq grows with the physical order of each partition.
CREATE INDEX IF NOT EXISTS events_ingest_seq_brin ON events USING brin (ingest_seq);

-- Dedup bookkeeping: a partitioned table's unique index must contain the
-- partition key, and a resent event may carry another corrected timestamp, so
-- the uuid alone is made unique here.
CREATE TABLE IF NOT EXISTS event_uuids (
    uuid        uuid        PRIMARY KEY,
    received_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS event_uuids_received_at_idx ON event_uuids (received_at);

CREATE TABLE IF NOT EXISTS sessions (
    session_id  uuid        PRIMARY KEY,
    distinct_id text        NOT NULL,
    device_id   text,
    app_version text,
    os_name     text,
    os_version  text,
    properties  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    end_reason  text CHECK (end_reason IN ('client', 'timeout')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at IS NULL OR ended_at >= started_at),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
CREATE INDEX IF NOT EXISTS sessions_distinct_id_idx ON sessions (distinct_id, started_at);
CREATE INDEX IF NOT EXISTS sessions_open_idx ON sessions (started_at) WHERE ended_at IS NULL;

-- Dead letters: everything refused, with enough to see why and replay it.
CREATE TABLE IF NOT EXISTS rejected_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at       timestamptz NOT NULL,
    endpoint          text        NOT NULL,
    reason            text        NOT NULL,
    detail            text        NOT NULL,
    fields            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    event_index       integer,
    -- bytea: a refused body may be invalid UTF-8 or hold NUL bytes.
    payload           bytea       NOT NULL,
    payload_bytes     bigint      NOT NULL,
    payload_truncated boolean     NOT NULL,
    remote_addr       text,
    replayed_at       timestamptz
);
CREATE INDEX IF NOT EXISTS rejected_events_received_at_idx ON rejected_events (received_at);
CREATE INDEX IF NOT EXISTS rejected_events_reason_idx ON rejected_events (reason, received_at);

-- Creates the daily partitions of `events` for [first_day, last_day]; safe to
-- call concurrently and repeatedly. Returns how many it created.
CREATE OR REPLACE FUNCTION ensure_event_partitions(first_day date, last_day date)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date := first_day;
    created integer := 0;
    part text;
BEGIN
    WHILE d <= last_day LOOP
        part := 'events_p' || to_char(d, 'YYYYMMDD');
        IF to_regclass(part) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                    part,
                    (d::timestamp AT TIME ZONE 'UTC'),
                    ((d + 1)::timestamp AT TIME ZONE 'UTC'));
                created := created + 1;
            EXCEPTION WHEN duplicate_table OR invalid_object_definition THEN
                NULL;  -- another session created it first
            END;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END $$;
