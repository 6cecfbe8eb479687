-- Every session: the explicit ones of the sessions table, explicit session ids
-- seen only on events, and the sessions derived from events without a
-- session_id. Rebuilt whole on each run (a late event can merge two derived
-- sessions, so there is no exact cheaper rebuild).
--
-- Open or closed: explicit sessions take ended_at / end_reason from the
-- sessions table (the app ends them, the session-closure job times them out).
-- A session known only from events is closed with end_reason 'timeout' at its
-- last event once that is older than the session timeout; until then it is
-- 'open' with a null ended_at and duration.
{%- set as_of = var('sessions_as_of', none) %}
{%- set as_of_sql = "current_timestamp" if as_of is none else "timestamptz '" ~ as_of ~ "'" %}

with events as (
    select * from {{ ref('int_events_sessionized') }}
),

sessions as (
    select * from {{ ref('stg_eventtrack__sessions') }}
),

event_sessions as (
    select
        session_key,
        bool_or(session_source = 'explicit') as is_explicit,
        (array_agg(distinct_id order by event_at, ingest_seq))[1] as distinct_id,
        (array_agg(device_id order by event_at, ingest_seq))[1] as device_id,
        (array_agg(app_version order by event_at, ingest_seq))[1] as app_version,
        (array_agg(os_name order by event_at, ingest_seq))[1] as os_name,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at,
        count(distinct event_uuid) as event_count,
        (array_agg(event_type order by event_at, ingest_seq))[1] as first_event_type,
        (array_agg(event_type order by event_at desc, ingest_seq desc))[1] as last_event_type
    from events
    group by session_key
),

from_sessions_table as (
    select
        sessions.session_id,
        'explicit' as session_source,
        sessions.distinct_id,
        coalesce(sessions.device_id, event_sessions.device_id) as device_id,
        coalesce(sessions.app_version, event_sessions.app_version) as app_version,
        coalesce(sessions.os_name, event_sessions.os_name) as os_name,
        sessions.started_at,
        sessions.ended_at,
        coalesce(sessions.end_reason, 'open') as end_reason,
        coalesce(event_sessions.event_count, 0) as event_count,
        event_sessions.first_event_type,
        event_sessions.last_event_type
    from sessions
    left join event_sessions on event_sessions.session_key = sessions.session_id
),

from_events_only as (
    select
        event_sessions.session_key as session_id,
        case when event_sessions.is_explicit then 'explicit' else 'derived' end as session_source,
        event_sessions.distinct_id,
        event_sessions.device_id,
        event_sessions.app_version,
        event_sessions.os_name,
        event_sessions.first_event_at as started_at,
        case
            when event_sessions.last_event_at
                < {{ as_of_sql }} - interval '{{ session_timeout_minutes() }} minutes'
            then event_sessions.last_event_at
        end as ended_at,
        case
            when event_sessions.last_event_at
                < {{ as_of_sql }} - interval '{{ session_timeout_minutes() }} minutes'
            then 'timeout'
            else 'open'
        end as end_reason,
        event_sessions.event_count,
        event_sessions.first_event_type,
        event_sessions.last_event_type
    from event_sessions
    where not exists (select 1 from sessions where sessions.session_id = event_sessions.session_key)
),

all_sessions as (
    select * from from_sessions_table
    union all
    select * from from_events_only
)

select
    session_id,
    session_source,
    distinct_id,
    device_id,
    app_version,
    os_name,
    started_at,
    ended_at,
    end_reason,
    extract(epoch from ended_at - started_at)::numeric as duration_seconds,
    event_count,
    first_event_type,
    last_event_type
from all_sessions
