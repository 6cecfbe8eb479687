{#-
  The counting half of analytics.experiment_results (the Dagster asset
  `experiment_results` adds the statistics): per experiment and variant, the
  users exposed to that variant only, and those of them who converted, i.e. sent
  the goal event at or after their first exposure and before end_at.
-#}
with experiments as (
    select experiment_id, goal_event, secondary_events, control_variant, variants, start_at, end_at
    from {{ ref('stg_eventtrack__experiments') }}
),

variants as (
    select
        x.experiment_id,
        v.value ->> 'key' as variant,
        v.ordinality as variant_order,
        (v.value ->> 'expected_percentage')::float8 as expected_percentage,
        v.value ->> 'key' = x.control_variant as is_control,
        x.secondary_events
    from experiments x
    cross join lateral jsonb_array_elements(x.variants) with ordinality as v(value, ordinality)
),

exposures as (
    select experiment_id, distinct_id, variant, first_exposure_at
    from {{ ref('int_experiment_exposures') }}
    where not is_multi_variant
),

multi_variant as (
    select experiment_id, count(*) as multi_exposure_users
    from {{ ref('int_experiment_exposures') }}
    where is_multi_variant
    group by experiment_id
),

-- Each user's last goal event in the window: they converted when it is at or after their first exposure.
last_goal as (
    select x.experiment_id, e.distinct_id, max(e.event_at) as last_goal_at
    from {{ ref('stg_eventtrack__events') }} e
    inner join experiments x
        on e.event_type = x.goal_event
        and e.event_at >= x.start_at
        and e.event_at < x.end_at
    group by x.experiment_id, e.distinct_id
),

counts as (
    select
        ex.experiment_id,
        ex.variant,
        count(*) as exposures,
        count(*) filter (where g.last_goal_at >= ex.first_exposure_at) as conversions
    from exposures ex
    left join last_goal g
        on g.experiment_id = ex.experiment_id
        and g.distinct_id = ex.distinct_id
    group by ex.experiment_id, ex.variant
),

last_secondary as (
    select x.experiment_id, s.event_name, e.distinct_id, max(e.event_at) as last_at
    from experiments x
    cross join lateral jsonb_array_elements_text(x.secondary_events) as s(event_name)
    inner join {{ ref('stg_eventtrack__events') }} e
        on e.event_type = s.event_name
        and e.event_at >= x.start_at
        and e.event_at < x.end_at
    group by x.experiment_id, s.event_name, e.distinct_id
),

secondary_counts as (
    select ex.experiment_id, ex.variant, s.event_name, count(*) as conversions
    from exposures ex
    inner join last_secondary s
        on s.experiment_id = ex.experiment_id
        and s.distinct_id = ex.distinct_id
        and s.last_at >= ex.first_exposure_at
    group by ex.experiment_id, ex.variant, s.event_name
),

secondary as (
    select v.experiment_id, v.variant, jsonb_object_agg(s.event_name, coalesce(sc.conversions, 0)) as secondary_conversions
    from variants v
    cross join lateral jsonb_array_elements_text(v.secondary_events) as s(event_name)
    left join secondary_counts sc
        on sc.experiment_id = v.experiment_id
        and sc.variant = v.variant
        and sc.event_name = s.event_name
    group by v.experiment_id, v.variant
)

select
    v.experiment_id,
    v.variant,
    v.variant_order,
    v.is_control,
    v.expected_percentage,
    coalesce(c.exposures, 0) as exposures,
    coalesce(c.conversions, 0) as conversions,
    coalesce(m.multi_exposure_users, 0) as multi_exposure_users,
    coalesce(s.secondary_conversions, '{}'::jsonb) as secondary_conversions
from variants v
left join counts c
    on c.experiment_id = v.experiment_id
    and c.variant = v.variant
left join multi_variant m
    on m.experiment_id = v.experiment_id
left join secondary s
    on s.experiment_id = v.experiment_id
    and s.variant = v.variant
