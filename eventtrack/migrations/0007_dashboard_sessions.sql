-- Dashboard sign-ins. The signed cookie names one row by a random id (only its
-- SHA-256 is kept here); signing out deletes the row, which every API worker
-- sees at once. Expired rows are deleted at the next sign-in.
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    id_sha256    text        PRIMARY KEY,
    admin_key_id bigint      NOT NULL,
    expires_at   timestamptz NOT NULL
);
