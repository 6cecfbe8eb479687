{{ config(post_hook=["create index if not exists {{ this.name }}_funnel_idx on {{ this }} (funnel_id, step)"]) }}
-- Every saved funnel over its last range_days whole UTC days, rebuilt whole daily.
-- Same definition as the live endpoint (ingest_api/admin/funnel_query.py): entry at
-- the user's first step-1 event in range; each next step is the earliest event of
-- that type strictly after the previous step and strictly before t1 + window.
-- Steps are walked with a recursive CTE, one index lookup per user and step
-- (the steps of a saved funnel are data here, not SQL text).

with recursive funnels as (
    select
        funnel_id,
        funnel_name,
        steps,
        window_seconds,
        make_interval(secs => window_seconds) as conversion_window,
        range_end - make_interval(days => range_days) as range_start,
        range_end
    from {{ ref('stg_eventtrack__saved_funnels') }}
    cross join (
        select date_trunc('day', {% if var('funnels_as_of') %}{{ dbt.string_literal(var('funnels_as_of')) }}::timestamptz{% else %}now(){% endif %}, 'UTC') as range_end
    ) as as_of
),

events as (
    select distinct_id, event_type, event_at from {{ ref('stg_eventtrack__events') }}
),

anchors as (
    select funnels.funnel_id, events.distinct_id, min(events.event_at) as first_at
    from funnels
    join events
        on events.event_type = funnels.steps[1]
       and events.event_at >= funnels.range_start
       and events.event_at < funnels.range_end
    group by 1, 2
),

reached (funnel_id, distinct_id, first_at, step, previous_at, reached_at) as (
    select funnel_id, distinct_id, first_at, 1, null::timestamptz, first_at from anchors
    union all
    select reached.funnel_id, reached.distinct_id, reached.first_at, reached.step + 1, reached.reached_at, next_step.at
    from reached
    join funnels on funnels.funnel_id = reached.funnel_id
    cross join lateral (
        select min(events.event_at) as at
        from events
        where events.distinct_id = reached.distinct_id
          and events.event_type = funnels.steps[reached.step + 1]
          and events.event_at > reached.reached_at
          and events.event_at < reached.first_at + funnels.conversion_window
    ) as next_step
    where reached.step < cardinality(funnels.steps) and next_step.at is not null
),

steps as (
    select funnels.*, step_numbers.step
    from funnels
    cross join lateral generate_subscripts(funnels.steps, 1) as step_numbers (step)
),

counted as (
    select
        steps.funnel_id,
        steps.funnel_name,
        steps.step,
        steps.steps[steps.step] as event_type,
        steps.range_start,
        steps.range_end,
        steps.window_seconds,
        count(reached.distinct_id) as users,
        percentile_cont(0.5) within group (order by extract(epoch from reached.reached_at - reached.previous_at)::float8)
            as median_seconds_from_previous
    from steps
    left join reached on reached.funnel_id = steps.funnel_id and reached.step = steps.step
    group by 1, 2, 3, 4, 5, 6, 7
)

select
    counted.*,
    round(users::numeric / nullif(lag(users) over (partition by funnel_id order by step), 0), 6) as conversion_from_previous,
    round(users::numeric / nullif(first_value(users) over (partition by funnel_id order by step), 0), 6) as conversion_from_first
from counted
