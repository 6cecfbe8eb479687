-- Project write keys (the public key an app ships with) and persons.

-- Write keys are public by nature: they are compiled into apps. They are kept
-- as they are (no hash) so the list command can show them again.
CREATE TABLE IF NOT EXISTS write_keys (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    key        text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

INSERT INTO config_versions (name) VALUES ('write_keys') ON CONFLICT DO NOTHING;

DROP TRIGGER IF EXISTS write_keys_changed ON write_keys;
CREATE TRIGGER write_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON write_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version('write_keys');

-- One row per person, keyed by the distinct_id that identifies them (after
-- $identify: the identified id). Updated from events that carry $set,
-- $set_once, or are $identify / $create_alias.
CREATE TABLE IF NOT EXISTS persons (
    distinct_id text        PRIMARY KEY,
    properties  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Other ids of a person: an anonymous id merged by $identify ($anon_distinct_id)
-- or an alias from $create_alias, mapped to the person's distinct_id.
CREATE TABLE IF NOT EXISTS person_distinct_ids (
    alias       text        PRIMARY KEY,
    distinct_id text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS person_distinct_ids_distinct_id_idx ON person_distinct_ids (distinct_id);
