{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='day',
        on_schema_change='fail',
        full_refresh=false,
        pre_hook="{{ forget_requested_buckets('day', 'day', days_after=29) }}",
        post_hook=[
            "create index if not exists {{ this.name }}_day_idx on {{ this }} (day)",
            "create index if not exists {{ this.name }}_watermark_idx on {{ this }} (_ingest_seq_watermark)",
        ],
    )
}}
-- One row per UTC day with at least one event. A day's users also count in
-- the WAU of the next 6 days and the MAU of the next 29, so an event arriving
-- for day D rebuilds every day with events in [D, D + 29].

with events as (
    select * from {{ ref('stg_eventtrack__events') }}
),

arrived_days as (
    select (bucket_start at time zone 'UTC')::date as day
    from ({{ arrived_buckets('events', 'day') }}) as arrived
),

window_days as (
    select (bucket_start at time zone 'UTC')::date as day
    from ({{ window_buckets('day') }}) as windowed
),

candidate_days as (
    select distinct arrived_days.day + offsets.n as day
    from arrived_days
    cross join generate_series(0, 29) as offsets (n)
    union
    select day from window_days
),

days as (
    select candidate_days.day
    from candidate_days
    where exists (
        select 1 from events
        where events.event_at >= candidate_days.day::timestamp at time zone 'UTC'
          and events.event_at < (candidate_days.day + 1)::timestamp at time zone 'UTC'
    )
),

-- Each user once per active day over the 30 days that end each rebuilt day.
user_days as (
    select distinct events.distinct_id, (events.event_at at time zone 'UTC')::date as day
    from events
    where exists (
        select 1 from days
        where events.event_at >= (days.day - 29)::timestamp at time zone 'UTC'
          and events.event_at < (days.day + 1)::timestamp at time zone 'UTC'
    )
)

select
    days.day,
    count(distinct user_days.distinct_id) filter (where user_days.day = days.day) as dau,
    count(distinct user_days.distinct_id) filter (where user_days.day > days.day - 7) as wau,
    count(distinct user_days.distinct_id) as mau,
    {{ next_ingest_watermark('events') }} as _ingest_seq_watermark
from days
join user_days
    on user_days.day > days.day - 30
   and user_days.day <= days.day
group by days.day
