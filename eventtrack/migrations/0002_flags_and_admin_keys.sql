-- Feature flags and admin API keys.

CREATE TABLE IF NOT EXISTS feature_flags (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key                text        NOT NULL UNIQUE,
    name               text        NOT NULL,
    description        text        NOT NULL DEFAULT '',
    active             boolean     NOT NULL DEFAULT true,
    rollout_percentage double precision NOT NULL CHECK (rollout_percentage BETWEEN 0 AND 100),
    variants           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    conditions         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    payload            jsonb,
    version            integer     NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- One counter for "something about flags changed": every API worker polls it
-- (a single-row read) and reloads its in-process cache when it moves.
CREATE TABLE IF NOT EXISTS config_versions (
    name    text PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0
);
INSERT INTO config_versions (name) VALUES ('feature_flags'), ('admin_api_keys') ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION bump_config_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE config_versions SET version = version + 1 WHERE name = TG_ARGV[0];
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS feature_flags_changed ON feature_flags;
CREATE TRIGGER feature_flags_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON feature_flags
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version('feature_flags');

-- Admin keys: only a SHA-256 of the key is stored; the key is shown once.
CREATE TABLE IF NOT EXISTS admin_api_keys (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    key_hash   bytea       NOT NULL UNIQUE,
    key_prefix text        NOT NULL,  -- first characters, to tell keys apart in listings
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

DROP TRIGGER IF EXISTS admin_api_keys_changed ON admin_api_keys;
CREATE TRIGGER admin_api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON admin_api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version('admin_api_keys');

-- Session listing for the admin API.
CREATE INDEX IF NOT EXISTS sessions_started_at_idx ON sessions (started_at DESC, session_id);
