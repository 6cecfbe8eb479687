{#-
  One row per experiment and exposed user. An exposure is a `$feature_flag_called`
  event for the experiment's flag inside [start_at, end_at) whose response is one
  of the experiment's variants (a multivariate flag's `false`, given to users
  outside its rollout, is not an exposure). A user who got two or more variants
  is kept with `is_multi_variant` and no variant: the mart excludes and counts them.
-#}
with experiments as (
    select experiment_id, flag_key, start_at, end_at, variants
    from {{ ref('stg_eventtrack__experiments') }}
),

variant_keys as (
    select x.experiment_id, v.value ->> 'key' as variant
    from experiments x
    cross join lateral jsonb_array_elements(x.variants) as v(value)
),

calls as (
    select
        x.experiment_id,
        e.distinct_id,
        e.event_at,
        -- A boolean response reads as 'true' / 'false', the variant keys of a boolean flag.
        case when jsonb_typeof(e.properties -> '$feature_flag_response') in ('string', 'boolean')
            then e.properties ->> '$feature_flag_response'
        end as variant
    from {{ ref('stg_eventtrack__events') }} e
    inner join experiments x
        on e.properties ->> '$feature_flag' = x.flag_key
        and e.event_at >= x.start_at
        and e.event_at < x.end_at
    where e.event_type = '$feature_flag_called'
)

select
    c.experiment_id,
    c.distinct_id,
    min(c.event_at) as first_exposure_at,
    count(distinct c.variant) > 1 as is_multi_variant,
    case when count(distinct c.variant) = 1 then min(c.variant) end as variant
from calls c
inner join variant_keys k
    on k.experiment_id = c.experiment_id
    and k.variant = c.variant
group by c.experiment_id, c.distinct_id
