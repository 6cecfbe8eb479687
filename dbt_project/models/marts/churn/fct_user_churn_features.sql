{#-
  Churn features (docs/analytics.md, "Churn risk"): one row per weekly cut-off date and user active
  in the 28 days before it. A cut-off is a UTC midnight; the features read only the days before it,
  the label only the days from it:
  - the cut-offs: the latest one, `churn_as_of` (default: today, UTC; the days before it are complete),
    and the churn_cutoff_weeks weeks before it, one a week;
  - churned: no event in [cut-off, cut-off + churn_horizon_days days); null (unknown) while that
    range is not over, i.e. cut-off + horizon > the latest cut-off.
-#}
{%- set as_of = var('churn_as_of', none) %}
{%- set last_cutoff = "(current_timestamp at time zone 'UTC')::date" if as_of is none else "date '" ~ as_of ~ "'" %}
{%- set horizon = var('churn_horizon_days') | int %}

with daily as (
    select * from {{ ref('int_user_activity_daily') }}
),

cutoffs as (
    select ({{ last_cutoff }} - 7 * weeks_back)::date as cutoff_date, {{ last_cutoff }} as last_cutoff
    from generate_series(0, {{ var('churn_cutoff_weeks') | int }}) as weeks_back
),

first_seen as (
    select distinct_id, min(activity_date) as first_seen_date
    from daily
    group by distinct_id
),

windowed as (
    select
        cutoffs.cutoff_date,
        cutoffs.last_cutoff,
        daily.distinct_id,
        max(daily.activity_date) as last_active_date,
        count(*) as active_days_28d,
        sum(daily.events) as events_28d,
        sum(daily.sessions) as sessions_28d,
        sum(daily.session_seconds) as session_seconds_28d,
        avg(daily.distinct_event_types) as distinct_event_types_per_day,
        {%- for n in range(1, 6) %}
        sum(daily.top_type_{{ n }}_events) as top_type_{{ n }}_events_28d,
        {%- endfor %}
        coalesce(sum(daily.sessions) filter (where daily.activity_date >= cutoffs.cutoff_date - 7), 0) as sessions_7d,
        coalesce(sum(daily.sessions) filter (where daily.activity_date < cutoffs.cutoff_date - 7), 0)
            as sessions_prev_21d,
        coalesce(sum(daily.events) filter (where daily.activity_date >= cutoffs.cutoff_date - 7), 0) as events_7d,
        coalesce(sum(daily.events) filter (where daily.activity_date < cutoffs.cutoff_date - 7), 0)
            as events_prev_21d,
        (array_agg(daily.app_version order by daily.activity_date desc)
            filter (where daily.app_version is not null))[1] as app_version,
        (array_agg(daily.os_name order by daily.activity_date desc)
            filter (where daily.os_name is not null))[1] as os_name
    from cutoffs
    inner join daily
        on daily.activity_date >= cutoffs.cutoff_date - 28
        and daily.activity_date < cutoffs.cutoff_date
    group by cutoffs.cutoff_date, cutoffs.last_cutoff, daily.distinct_id
),

returned as (
    select distinct cutoffs.cutoff_date, daily.distinct_id
    from cutoffs
    inner join daily
        on daily.activity_date >= cutoffs.cutoff_date
        and daily.activity_date < cutoffs.cutoff_date + {{ horizon }}
)

select
    windowed.cutoff_date,
    windowed.distinct_id,
    (windowed.cutoff_date - windowed.last_active_date) as days_since_last_active,
    windowed.active_days_28d,
    windowed.events_28d,
    windowed.sessions_28d,
    windowed.session_seconds_28d / nullif(windowed.sessions_28d, 0) as avg_session_seconds_28d,
    windowed.distinct_event_types_per_day::double precision as distinct_event_types_per_day,
    {%- for n in range(1, 6) %}
    windowed.top_type_{{ n }}_events_28d,
    {%- endfor %}
    (windowed.cutoff_date - first_seen.first_seen_date) as days_since_first_seen,
    windowed.sessions_7d,
    windowed.sessions_prev_21d,
    windowed.sessions_7d / 7.0 - windowed.sessions_prev_21d / 21.0 as sessions_trend_7v21,
    windowed.events_7d / 7.0 - windowed.events_prev_21d / 21.0 as events_trend_7v21,
    windowed.app_version,
    windowed.os_name,
    case
        when windowed.cutoff_date + {{ horizon }} <= windowed.last_cutoff then returned.distinct_id is null
    end as churned
from windowed
inner join first_seen on first_seen.distinct_id = windowed.distinct_id
left join returned
    on returned.cutoff_date = windowed.cutoff_date
    and returned.distinct_id = windowed.distinct_id
