select
    session_id::text as session_id,
    distinct_id,
    device_id,
    app_version,
    os_name,
    os_version,
    properties,
    started_at,
    ended_at,
    end_reason,
    created_at
from {{ source('eventtrack', 'sessions') }}
