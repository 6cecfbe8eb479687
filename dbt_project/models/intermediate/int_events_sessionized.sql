-- Every event with the session it belongs to: its explicit session_id, or a
-- derived session by inactivity (see macros/sessionize.sql). A view over all
-- events: fct_sessions reads it whole; the incremental aggregates apply the
-- same macro to the buckets they rebuild instead.
with events as (
    select * from {{ ref('stg_eventtrack__events') }}
)

select
    event_uuid,
    event_type,
    distinct_id,
    device_id,
    session_id,
    session_key,
    case when session_id is null then 'derived' else 'explicit' end as session_source,
    is_session_start,
    session_started_at,
    app_version,
    os_name,
    event_at,
    received_at,
    ingest_seq
from ({{ sessionize('events') }}) as sessionized
