-- Privacy operations: the audit log of erasures and exports, and the queue of
-- aggregate buckets to rebuild after rows were deleted (docs/privacy.md).

-- Who did what, when. The subject is kept as the SHA-256 of the distinct_id,
-- not the id itself: the log proves that an erasure was done (and can be
-- searched by someone who knows the id) without keeping the erased id around.
CREATE TABLE IF NOT EXISTS audit_log (
    id                 uuid        PRIMARY KEY,
    at                 timestamptz NOT NULL DEFAULT now(),
    admin_key_id       bigint,
    admin_key_name     text,
    action             text        NOT NULL,
    subject_sha256     text,
    details            jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_at_idx ON audit_log (at DESC, id);
CREATE INDEX IF NOT EXISTS audit_log_subject_idx ON audit_log (subject_sha256, at);

-- Deletions have no arrival to make the incremental aggregates rebuild the
-- buckets they touched, so they are queued here. `seq` comes from the events'
-- own sequence: the models compare it with the same arrival watermark as
-- events.ingest_seq (dbt_project/macros/rebuild_window.sql).
CREATE TABLE IF NOT EXISTS aggregate_rebuilds (
    seq          bigint      NOT NULL DEFAULT nextval('events_ingest_seq') PRIMARY KEY,
    -- the start of the UTC hour whose rows changed; coarser grains truncate it
    bucket_at    timestamptz NOT NULL,
    reason       text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aggregate_rebuilds_requested_at_idx ON aggregate_rebuilds (requested_at);
