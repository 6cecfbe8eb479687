{#-
  One row per experiment and exposed user, with their conversions.

  An exposure is a `$feature_flag_called` event for the experiment's flag inside
  [start_at, end_at) whose response is one of the experiment's variants (a
  multivariate flag's `false`, given to users outside its rollout, is not one).
  A user who got two or more variants has `is_multi_variant` and no variant: the
  mart excludes and counts them. A conversion is the goal (or a secondary) event
  at or after the first exposure and before end_at.

  Every relevant event is tagged and grouped by (experiment, user, kind, event),
  then by (experiment, user): no join on distinct_id, so the cost grows linearly
  with the events and does not depend on the planner's row estimates. The hash
  aggregates get more memory than the default 4 MB (SET LOCAL: this model only).
  A table (with ANALYZE), as the mart reads it several times.
-#}
{{ config(
    materialized='table',
    pre_hook="set local work_mem = '256MB'",
    post_hook='analyze {{ this }}',
) }}

with experiments as (
    select experiment_id, flag_key, goal_event, secondary_events, variants, start_at, end_at
    from {{ ref('stg_eventtrack__experiments') }}
),

-- NOT MATERIALIZED: each branch below scans only the events it needs.
events as not materialized (
    select distinct_id, event_type, event_at, properties
    from {{ ref('stg_eventtrack__events') }}
),

-- Materialized: joined by hash, not re-expanded per exposure event.
variant_keys as materialized (
    select x.experiment_id, v.value ->> 'key' as variant
    from experiments x
    cross join lateral jsonb_array_elements(x.variants) as v(value)
),

-- kind 0: exposure (with its variant), 1: goal, 2: secondary event.
tagged as (
    -- distinct_id in the "C" collation: any sort by user compares bytes, not locale rules.
    select x.experiment_id, e.distinct_id collate "C" as distinct_id, 0 as kind, null::text as event_name, e.event_at,
           -- A boolean response reads as 'true' / 'false', the variant keys of a boolean flag.
           e.properties ->> '$feature_flag_response' as variant
    from events e
    inner join experiments x
        on e.properties ->> '$feature_flag' = x.flag_key
        and e.event_at >= x.start_at
        and e.event_at < x.end_at
    inner join variant_keys k
        on k.experiment_id = x.experiment_id
        and k.variant = e.properties ->> '$feature_flag_response'
        and jsonb_typeof(e.properties -> '$feature_flag_response') in ('string', 'boolean')
    where e.event_type = '$feature_flag_called'

    union all

    select x.experiment_id, e.distinct_id collate "C", 1, null, e.event_at, null
    from events e
    inner join experiments x
        on e.event_type = x.goal_event
        and e.event_at >= x.start_at
        and e.event_at < x.end_at

    union all

    select x.experiment_id, e.distinct_id collate "C", 2, s.event_name, e.event_at, null
    from experiments x
    cross join lateral jsonb_array_elements_text(x.secondary_events) as s(event_name)
    inner join events e
        on e.event_type = s.event_name
        and e.event_at >= x.start_at
        and e.event_at < x.end_at
),

-- Per (experiment, user, kind, event), then per (experiment, user): hash aggregates, no sort
-- of the users and no join on distinct_id.
per_kind as (
    select
        experiment_id, distinct_id, kind, event_name,
        min(event_at) as first_at,
        max(event_at) as last_at,
        min(variant) as min_variant,
        max(variant) as max_variant
    from tagged
    group by experiment_id, distinct_id, kind, event_name
),

per_user as (
    select
        experiment_id,
        distinct_id,
        min(first_at) filter (where kind = 0) as first_exposure_at,
        min(min_variant) filter (where kind = 0) as min_variant,
        max(max_variant) filter (where kind = 0) as max_variant,
        max(last_at) filter (where kind = 1) as last_goal_at,
        -- one key per secondary event (per_kind grouped by it): its last time
        jsonb_object_agg(event_name, last_at) filter (where kind = 2) as last_secondary_at
    from per_kind
    group by experiment_id, distinct_id
)

select
    experiment_id,
    distinct_id,
    first_exposure_at,
    min_variant <> max_variant as is_multi_variant,
    case when min_variant = max_variant then min_variant end as variant,
    coalesce(last_goal_at >= first_exposure_at, false) as converted,
    case when last_secondary_at is null then '{}'::text[] else array(
        select s.key from jsonb_each_text(last_secondary_at) as s(key, value)
        where s.value::timestamptz >= first_exposure_at
        order by s.key
    ) end as secondary_conversions
from per_user
where first_exposure_at is not null
