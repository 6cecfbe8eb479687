-- A/B experiments: a flag, a goal event and a window. Results are computed by the
-- pipeline (dbt counts, Dagster statistics) into analytics.experiment_results.

CREATE TABLE IF NOT EXISTS experiments (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text        NOT NULL,
    description      text        NOT NULL DEFAULT '',
    -- A key, not a foreign key: deleting a flag must not fail or erase an experiment's history.
    flag_key         text        NOT NULL,
    control_variant  text        NOT NULL,
    goal_event       text        NOT NULL,
    secondary_events jsonb       NOT NULL DEFAULT '[]'::jsonb,
    -- The flag's variants and their expected shares, copied from the flag at each save:
    -- the sample-ratio check compares exposures with this split.
    variants         jsonb       NOT NULL,
    start_at         timestamptz NOT NULL,
    end_at           timestamptz NOT NULL CHECK (start_at < end_at),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

