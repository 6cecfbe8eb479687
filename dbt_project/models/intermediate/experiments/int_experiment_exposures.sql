{#-
  One row per experiment and user who was exposed to it, or sent its goal or a
  secondary event, inside its window; the exposed ones (first_exposure_at not
  null) are what the mart counts.

  An exposure is a `$feature_flag_called` event for the experiment's flag inside
  [start_at, end_at) whose response is one of the experiment's variants (a
  multivariate flag's `false`, given to users outside its rollout, is not one).
  A user who got two or more variants has `is_multi_variant` and no variant: the
  mart excludes and counts them. A conversion is the goal (or a secondary) event
  at or after the first exposure and before end_at.

  Incremental: each row keeps what the conversions are derived from (first
  exposure, lowest and highest variant seen, last goal and secondary times),
  all minimums and maximums, so a run folds in only the events that ARRIVED
  since the last one (events.ingest_seq, as the aggregates do) and merges them
  with the stored row: late exposures move first_exposure_at back, late goals
  forward, resent events change nothing. Users who sent a goal before their
  exposure arrived keep a row without exposure for that reason. Experiments
  whose definition changed (or new ones) are recomputed from the whole window
  (macros/experiment_refold.sql).

  The row with experiment_id 0 carries the arrival watermark of the last run,
  so it advances even when no user changed.

  UNLOGGED: derived state, half the write cost. A crash empties it (Postgres
  truncates unlogged tables in recovery); an empty table has no watermark, so
  the next run rebuilds every experiment from the raw events.
-#}
{%- do drop_if_not_incremental_state('definition_hash') -%}
{%- set refold = experiments_to_refold() -%}
{{ config(
    materialized='incremental',
    incremental_strategy='upsert',
    unique_key=['experiment_id', 'distinct_id'],
    unlogged=true,
    on_schema_change='fail',
    watermark_row='experiment_id = 0',
    pre_hook=["set local work_mem = '256MB'", "{{ forget_stale_experiments() }}"],
    post_hook="create unique index if not exists {{ this.name }}_key_idx on {{ this }} (experiment_id, distinct_id)",
) }}

with experiments as (
    select
        experiment_id, flag_key, goal_event, secondary_events, variants, start_at, end_at,
        {{ experiment_definition_hash('x') }} as definition_hash,
        experiment_id = any({{ bigint_array(refold['recompute']) }}) as recompute
    from (select * from {{ ref('stg_eventtrack__experiments') }}) x  -- a subquery: dbt --empty aliases refs itself
),

-- NOT MATERIALIZED: each branch below scans only the events it needs.
events as not materialized (
    select distinct_id, event_type, event_at, properties, ingest_seq
    from {{ ref('stg_eventtrack__events') }}
),

-- Materialized: joined by hash, not re-expanded per exposure event.
variant_keys as materialized (
    select x.experiment_id, v.value ->> 'key' as variant
    from experiments x
    cross join lateral jsonb_array_elements(x.variants) as v(value)
),

-- The events to fold in, tagged with their kind (0: exposure with its variant, 1: goal,
-- 2: secondary, already reduced to its last time per user and event): all of a recomputed
-- experiment's window, the new arrivals for the others. Two branches per kind rather than
-- an OR, so the arrivals are found through the BRIN index on ingest_seq.
tagged as (
    {%- set scopes = ["x.recompute"] if refold['recompute'] else [] %}
    {%- do scopes.append("not x.recompute and e.ingest_seq > " ~ previous_ingest_watermark()) %}
    {%- for scope in scopes %}
    {%- if not loop.first %}

    union all
    {%- endif %}

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
    where e.event_type = '$feature_flag_called' and {{ scope }}

    union all

    select x.experiment_id, e.distinct_id collate "C", 1, null, e.event_at, null
    from events e
    inner join experiments x
        on e.event_type = x.goal_event
        and e.event_at >= x.start_at
        and e.event_at < x.end_at
    where {{ scope }}

    union all

    select x.experiment_id, e.distinct_id collate "C", 2, s.event_name, max(e.event_at), null
    from experiments x
    cross join lateral jsonb_array_elements_text(x.secondary_events) as s(event_name)
    inner join events e
        on e.event_type = s.event_name
        and e.event_at >= x.start_at
        and e.event_at < x.end_at
    where {{ scope }}
    group by x.experiment_id, e.distinct_id, s.event_name
    {%- endfor %}
),

-- Per (experiment, user): one hash aggregate, no sort of the users and no join on distinct_id.
arrived as (
    select
        experiment_id,
        distinct_id,
        min(event_at) filter (where kind = 0) as first_exposure_at,
        min(variant) filter (where kind = 0) as min_variant,
        max(variant) filter (where kind = 0) as max_variant,
        max(event_at) filter (where kind = 1) as last_goal_at,
        -- one key per secondary event (its branch grouped by it): its last time
        jsonb_object_agg(event_name, event_at) filter (where kind = 2) as last_secondary_at
    from tagged
    group by experiment_id, distinct_id
),

-- The arrivals merged with the stored row of the same user (none for recomputed experiments:
-- the pre-hook deleted theirs). least/greatest skip nulls.
merged as (
    select
        a.experiment_id,
        a.distinct_id,
        {%- if is_incremental() %}
        least(a.first_exposure_at, p.first_exposure_at) as first_exposure_at,
        least(a.min_variant, p.min_variant) as min_variant,
        greatest(a.max_variant, p.max_variant) as max_variant,
        greatest(a.last_goal_at, p.last_goal_at) as last_goal_at,
        case
            when p.last_secondary_at is null then a.last_secondary_at
            when a.last_secondary_at is null then p.last_secondary_at
            else (
                select jsonb_object_agg(s.key, s.last_at)
                from (
                    select key, max(value::timestamptz) as last_at
                    from (
                        select * from jsonb_each_text(a.last_secondary_at)
                        union all
                        select * from jsonb_each_text(p.last_secondary_at)
                    ) as both_sides
                    group by key
                ) as s
            )
        end as last_secondary_at
        {%- else %}
        a.first_exposure_at, a.min_variant, a.max_variant, a.last_goal_at, a.last_secondary_at
        {%- endif %}
    from arrived a
    {%- if is_incremental() %}
    left join {{ this }} p
        on p.experiment_id = a.experiment_id
        and p.distinct_id = a.distinct_id
    {%- endif %}
),

watermark as (
    select {{ next_ingest_watermark(ref('stg_eventtrack__events')) }} as value
)

select
    m.experiment_id,
    m.distinct_id,
    m.first_exposure_at,
    coalesce(m.min_variant <> m.max_variant, false) as is_multi_variant,
    case when m.min_variant = m.max_variant then m.min_variant end as variant,
    coalesce(m.last_goal_at >= m.first_exposure_at, false) as converted,
    case when m.last_secondary_at is null or m.first_exposure_at is null then '{}'::text[] else array(
        select s.key from jsonb_each_text(m.last_secondary_at) as s(key, value)
        where s.value::timestamptz >= m.first_exposure_at
        order by s.key
    ) end as secondary_conversions,
    m.min_variant,
    m.max_variant,
    m.last_goal_at,
    m.last_secondary_at,
    x.definition_hash,
    w.value as _ingest_seq_watermark
from merged m
inner join experiments x on x.experiment_id = m.experiment_id
cross join watermark w

union all

-- The run marker: experiment 0 is never an experiment.
select
    0::bigint, ''::text collate "C", null::timestamptz, false, null::text, false, '{}'::text[],
    null::text, null::text, null::timestamptz, null::jsonb, null::uuid, w.value
from watermark w
