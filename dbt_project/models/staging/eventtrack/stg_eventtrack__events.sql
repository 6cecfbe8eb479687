select
    uuid as event_uuid,
    event_type,
    distinct_id,
    device_id,
    session_id,
    app_version,
    os_name,
    os_version,
    properties,
    "timestamp" as event_at,
    client_timestamp as client_event_at,
    sent_at as client_sent_at,
    received_at,
    ingest_seq
from {{ source('eventtrack', 'events') }}
