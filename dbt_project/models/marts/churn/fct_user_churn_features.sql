{#-
  Churn features (docs/analytics.md, "Churn risk"): one row per weekly cut-off date and user active
  in the 28 days before it. A cut-off is a UTC midnight; the features read only the days before it,
  the label only the days from it:
  - the cut-offs: the latest one, `churn_as_of` (default: today, UTC; the days before it are complete),
    and the churn_cutoff_weeks weeks before it, one a week;
  - churned: no event in [cut-off, cut-off + churn_horizon_days days); null (unknown) while that
    range is not over, i.e. cut-off + horizon > the latest cut-off.

  The days are first summed into weeks (week k: the 7 days before cut-off k); the 28 days before cut-off
  k are then weeks k..k+3, and the first active day after it is the first of weeks k-1, k-2, ...: a join
  of a few weekly rows per cut-off instead of 28 daily ones (docs/performance.md, "Churn risk").
-#}
{%- set as_of = var('churn_as_of', none) %}
{%- set last_cutoff = "(current_timestamp at time zone 'UTC')::date" if as_of is none else "date '" ~ as_of ~ "'" %}
{%- set horizon = var('churn_horizon_days') | int %}
{%- set weeks = var('churn_cutoff_weeks') | int %}
{%- set label_weeks = (horizon + 6) // 7 %}

with daily as (
    select * from {{ ref('int_user_activity_daily') }}
),

cutoffs as (
    select weeks_back, ({{ last_cutoff }} - 7 * weeks_back)::date as cutoff_date, {{ last_cutoff }} as last_cutoff
    from generate_series(0, {{ weeks }}) as weeks_back
),

first_seen as (
    select distinct_id, min(activity_date) as first_seen_date
    from daily
    group by distinct_id
),

-- Materialized: read once by the join below, not recomputed per cut-off.
weekly as materialized (
    select
        distinct_id,
        ({{ last_cutoff }} - activity_date - 1) / 7 as weeks_back,
        min(activity_date) as first_active_date,
        max(activity_date) as last_active_date,
        count(*) as active_days,
        sum(events) as events,
        sum(sessions) as sessions,
        sum(session_seconds) as session_seconds,
        sum(distinct_event_types) as distinct_event_types,
        {%- for n in range(1, 6) %}
        sum(top_type_{{ n }}_events) as top_type_{{ n }}_events,
        {%- endfor %}
        (array_agg(app_version order by activity_date desc) filter (where app_version is not null))[1] as app_version,
        (array_agg(os_name order by activity_date desc) filter (where os_name is not null))[1] as os_name
    from daily
    where activity_date < {{ last_cutoff }} and activity_date >= {{ last_cutoff }} - 7 * {{ weeks + 4 }}
    group by 1, 2
),

-- Each cut-off with the weeks of its 28 days (weeks_after 0..3) and of its label (weeks_after < 0).
joined as (
    select
        cutoffs.cutoff_date,
        cutoffs.last_cutoff,
        weekly.*,
        weekly.weeks_back - cutoffs.weeks_back as weeks_after,
        weekly.weeks_back - cutoffs.weeks_back between 0 and 3 as in_window
    from cutoffs
    inner join weekly
        on weekly.weeks_back between cutoffs.weeks_back - {{ label_weeks }} and cutoffs.weeks_back + 3
),

windowed as (
    select
        joined.cutoff_date,
        joined.last_cutoff,
        joined.distinct_id,
        max(joined.last_active_date) filter (where in_window) as last_active_date,
        sum(joined.active_days) filter (where in_window) as active_days_28d,
        sum(joined.events) filter (where in_window) as events_28d,
        sum(joined.sessions) filter (where in_window) as sessions_28d,
        sum(joined.session_seconds) filter (where in_window) as session_seconds_28d,
        sum(joined.distinct_event_types) filter (where in_window) as distinct_event_type_days,
        {%- for n in range(1, 6) %}
        sum(joined.top_type_{{ n }}_events) filter (where in_window) as top_type_{{ n }}_events_28d,
        {%- endfor %}
        coalesce(sum(joined.sessions) filter (where weeks_after = 0), 0) as sessions_7d,
        coalesce(sum(joined.sessions) filter (where weeks_after between 1 and 3), 0) as sessions_prev_21d,
        coalesce(sum(joined.events) filter (where weeks_after = 0), 0) as events_7d,
        coalesce(sum(joined.events) filter (where weeks_after between 1 and 3), 0) as events_prev_21d,
        (array_agg(joined.app_version order by weeks_after) filter (where in_window and joined.app_version is not null))[1]
            as app_version,
        (array_agg(joined.os_name order by weeks_after) filter (where in_window and joined.os_name is not null))[1]
            as os_name,
        min(joined.first_active_date) filter (where weeks_after < 0) as next_active_date
    from joined
    group by joined.cutoff_date, joined.last_cutoff, joined.distinct_id
    having bool_or(joined.in_window)
)

select
    windowed.cutoff_date,
    windowed.distinct_id,
    (windowed.cutoff_date - windowed.last_active_date) as days_since_last_active,
    windowed.active_days_28d,
    windowed.events_28d,
    windowed.sessions_28d,
    windowed.session_seconds_28d / nullif(windowed.sessions_28d, 0) as avg_session_seconds_28d,
    (windowed.distinct_event_type_days::double precision / windowed.active_days_28d) as distinct_event_types_per_day,
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
        when windowed.cutoff_date + {{ horizon }} <= windowed.last_cutoff
            then coalesce(windowed.next_active_date >= windowed.cutoff_date + {{ horizon }}, true)
    end as churned
from windowed
inner join first_seen on first_seen.distinct_id = windowed.distinct_id
