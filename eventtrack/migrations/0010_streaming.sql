-- Outbound webhook destinations (docs/operations.md "Streaming"): each one delivers the events after its
-- cursor, in arrival order (ingest_seq), and moves the cursor only after the receiver answered 2xx.
CREATE TABLE IF NOT EXISTS destinations (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                 text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    url                  text        NOT NULL,
    secret               text        NOT NULL,
    -- The event filter: event types (empty: all) and segment filters ("properties.plan=pro").
    event_types          text[]      NOT NULL DEFAULT '{}',
    filters              text[]      NOT NULL DEFAULT '{}',
    batch_size           integer     NOT NULL DEFAULT 100 CHECK (batch_size BETWEEN 1 AND 1000),
    max_wait_ms          integer     NOT NULL DEFAULT 1000 CHECK (max_wait_ms BETWEEN 0 AND 60000),
    timeout_ms           integer     NOT NULL DEFAULT 10000 CHECK (timeout_ms BETWEEN 100 AND 60000),
    pause_after_seconds  integer     NOT NULL DEFAULT 86400 CHECK (pause_after_seconds >= 1),
    status               text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    paused_reason        text,
    -- Every matching event with ingest_seq <= cursor_seq was delivered (or dead-lettered).
    cursor_seq           bigint      NOT NULL,
    -- Bumped by a replay or a resume: a delivery begun before it does not move the cursor.
    generation           integer     NOT NULL DEFAULT 0,
    failing_since        timestamptz,
    next_attempt_at      timestamptz,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    last_status          integer,
    last_error           text,
    last_delivered_at    timestamptz,
    delivered_events     bigint      NOT NULL DEFAULT 0,
    delivered_batches    bigint      NOT NULL DEFAULT 0,
    failed_attempts      bigint      NOT NULL DEFAULT 0,
    dead_lettered_events bigint      NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Batches a receiver refused for good (a 4xx other than 408 and 429), with its answer: the cursor moved
-- past them. The events themselves stay in `events` (replay re-sends them); only their uuids are kept here.
CREATE TABLE IF NOT EXISTS destination_dead_letters (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination_id bigint      NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    first_seq      bigint      NOT NULL,
    last_seq       bigint      NOT NULL,
    events         integer     NOT NULL,
    event_uuids    uuid[]      NOT NULL,
    status         integer     NOT NULL,
    response_body  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS destination_dead_letters_destination_idx ON destination_dead_letters (destination_id, id);
