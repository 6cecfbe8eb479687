{#-
  The counting half of analytics.agg_experiment_results (the Dagster asset
  `analytics/agg_experiment_results` adds the statistics): per experiment and variant of its
  flag, the users exposed to that variant only, and those of them who converted.
-#}
with experiments as (
    select experiment_id, secondary_events, control_variant, variants
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

-- One pass over the exposed users (the model also keeps users who only sent a goal so far,
-- and its run marker): multi-variant users fall in the group of variant null.
counts as (
    select
        experiment_id,
        variant,
        count(*) filter (where not is_multi_variant) as exposures,
        count(*) filter (where converted and not is_multi_variant) as conversions,
        count(*) filter (where is_multi_variant) as multi_exposure_users
    from {{ ref('int_experiment_exposures') }}
    where first_exposure_at is not null
    group by experiment_id, variant
),

multi_variant as (
    select experiment_id, sum(multi_exposure_users) as multi_exposure_users
    from counts
    group by experiment_id
),

-- Only the users with a secondary conversion are unnested.
secondary_counts as (
    select u.experiment_id, u.variant, s.event_name, count(*) as conversions
    from (select * from {{ ref('int_experiment_exposures') }}) u  -- a subquery: dbt --empty aliases refs itself
    cross join lateral unnest(u.secondary_conversions) as s(event_name)
    where u.first_exposure_at is not null
        and not u.is_multi_variant
        and cardinality(u.secondary_conversions) > 0
    group by u.experiment_id, u.variant, s.event_name
),

-- Every secondary event of the experiment, 0 when nobody converted on it.
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
    coalesce(m.multi_exposure_users, 0)::bigint as multi_exposure_users,
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
