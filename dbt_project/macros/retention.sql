{#
  The cohort triangle of agg_retention_weekly / agg_retention_daily. period: 'week' | 'day'.
  Cohort = the period of a user's first stored event; retained in period N = the
  return event (var retention_return_event, any event when null) in the period
  N periods after the cohort's. Every cohort gets a row for each period up to the
  latest period with any event, so zeros are rows too.
#}
{% macro retention_triangle(period) %}
{%- set step = 7 if period == 'week' else 1 -%}
{%- set return_event = var('retention_return_event') -%}
with events as (
    select distinct_id, event_type, event_at from {{ ref('stg_eventtrack__events') }}
),

first_seen as (
    select distinct_id, date_trunc('{{ period }}', min(event_at) at time zone 'UTC')::date as cohort
    from events
    group by distinct_id
),

returns as (
    select distinct distinct_id, date_trunc('{{ period }}', event_at at time zone 'UTC')::date as active_period
    from events
    {% if return_event is not none %}where event_type = {{ dbt.string_literal(return_event) }}{% endif %}
),

cohort_sizes as (
    select cohort, count(*) as cohort_users from first_seen group by cohort
),

last_period as (
    select date_trunc('{{ period }}', max(event_at) at time zone 'UTC')::date as active_period from events
),

grid as (
    select cohort_sizes.cohort, cohort_sizes.cohort_users, n.period_number
    from cohort_sizes
    cross join last_period
    cross join lateral generate_series(0, (last_period.active_period - cohort_sizes.cohort) / {{ step }}) as n (period_number)
),

retained as (
    select first_seen.cohort, (returns.active_period - first_seen.cohort) / {{ step }} as period_number, count(*) as retained_users
    from first_seen
    join returns on returns.distinct_id = first_seen.distinct_id and returns.active_period >= first_seen.cohort
    group by 1, 2
)

select
    grid.cohort,
    grid.period_number,
    grid.cohort + grid.period_number * {{ step }} as period_start,
    grid.cohort_users,
    coalesce(retained.retained_users, 0) as retained_users,
    round(coalesce(retained.retained_users, 0)::numeric / grid.cohort_users, 6) as retention_rate,
    {% if return_event is not none %}{{ dbt.string_literal(return_event) }}{% else %}null::text{% endif %} as return_event
from grid
left join retained
    on retained.cohort = grid.cohort and retained.period_number = grid.period_number
{% endmacro %}
