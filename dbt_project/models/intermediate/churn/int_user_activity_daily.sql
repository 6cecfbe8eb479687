-- One row per user and UTC day with an event: what the churn features are summed from
-- (marts/churn/fct_user_churn_features.sql), so features for any cut-off read days, not events.
-- A table rebuilt whole by the weekly churn_scores job (its sessions are int_events_sessionized's).
--
-- A session counts on the day it started; its length is its last event minus its first.
-- top_type_N_events: events of the N-th most frequent event type over all the events the model
-- reads (int_churn_top_event_types), so the columns mean the same on every row of one build.
{{ config(materialized='table') }}

with events as (
    select
        distinct_id,
        session_key,
        event_type,
        app_version,
        os_name,
        event_at,
        ingest_seq,
        (event_at at time zone 'UTC')::date as activity_date
    from {{ ref('int_events_sessionized') }}
),

top_types as (
    select * from {{ ref('int_churn_top_event_types') }}
),

session_spans as (
    select
        distinct_id,
        session_key,
        (min(event_at) at time zone 'UTC')::date as activity_date,
        extract(epoch from max(event_at) - min(event_at))::double precision as session_seconds
    from events
    group by distinct_id, session_key
),

sessions_by_day as (
    select distinct_id, activity_date, count(*) as sessions, sum(session_seconds) as session_seconds
    from session_spans
    group by distinct_id, activity_date
),

events_by_day as (
    select
        events.distinct_id,
        events.activity_date,
        count(*) as events,
        count(distinct events.event_type) as distinct_event_types,
        {%- for n in range(1, 6) %}
        count(*) filter (where top_types.type_rank = {{ n }}) as top_type_{{ n }}_events,
        {%- endfor %}
        (array_agg(events.app_version order by events.event_at desc, events.ingest_seq desc)
            filter (where events.app_version is not null))[1] as app_version,
        (array_agg(events.os_name order by events.event_at desc, events.ingest_seq desc)
            filter (where events.os_name is not null))[1] as os_name
    from events
    left join top_types on top_types.event_type = events.event_type
    group by events.distinct_id, events.activity_date
)

select
    events_by_day.distinct_id,
    events_by_day.activity_date,
    events_by_day.events,
    coalesce(sessions_by_day.sessions, 0) as sessions,
    coalesce(sessions_by_day.session_seconds, 0) as session_seconds,
    events_by_day.distinct_event_types,
    {%- for n in range(1, 6) %}
    events_by_day.top_type_{{ n }}_events,
    {%- endfor %}
    events_by_day.app_version,
    events_by_day.os_name
from events_by_day
left join sessions_by_day
    on sessions_by_day.distinct_id = events_by_day.distinct_id
    and sessions_by_day.activity_date = events_by_day.activity_date
