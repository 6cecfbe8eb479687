"""The admin JSON API's routes: events, sessions, feature flags, aggregates, funnels, retention, experiments.

Every handler requires an admin key (ingest_api/admin/http.py `admin_only`).
"""

from __future__ import annotations

from starlette.routing import Route

from ingest_api.admin import destinations
from ingest_api.admin.aggregates import event_aggregates, event_counts
from ingest_api.admin.analytics import (
    create_saved_funnel,
    delete_saved_funnel,
    funnel,
    get_saved_funnel,
    list_saved_funnels,
    retention,
)
from ingest_api.admin.behaviour_anomalies import list_anomalies
from ingest_api.admin.behaviour_churn import churn_routes
from ingest_api.admin.events import list_events, list_sessions
from ingest_api.admin.experiments import experiment_routes
from ingest_api.admin.feature_flags import (
    create_feature_flag,
    delete_feature_flag,
    get_feature_flag,
    list_feature_flags,
    patch_feature_flag,
    replace_feature_flag,
)
from ingest_api.admin.http import ADMIN
from ingest_api.admin.stream import stream_events
from ingest_api.routing import method_routes


def admin_routes() -> list[Route]:
    return [
        *method_routes(f"{ADMIN}/events/", {"GET": list_events}),
        *method_routes(f"{ADMIN}/events/event_counts/", {"GET": event_counts}),
        *method_routes(f"{ADMIN}/events/stream/", {"GET": stream_events}),
        *method_routes(f"{ADMIN}/event-aggregates/", {"GET": event_aggregates}),
        *method_routes(f"{ADMIN}/sessions/", {"GET": list_sessions}),
        *method_routes(f"{ADMIN}/feature-flags/", {"GET": list_feature_flags, "POST": create_feature_flag}),
        *method_routes(
            f"{ADMIN}/feature-flags/{{flag_id}}/",
            {
                "GET": get_feature_flag,
                "PUT": replace_feature_flag,
                "PATCH": patch_feature_flag,
                "DELETE": delete_feature_flag,
            },
        ),
        *method_routes(f"{ADMIN}/funnels/", {"GET": funnel}),
        *method_routes(f"{ADMIN}/funnels/saved/", {"GET": list_saved_funnels, "POST": create_saved_funnel}),
        *method_routes(
            f"{ADMIN}/funnels/saved/{{funnel_id}}/", {"GET": get_saved_funnel, "DELETE": delete_saved_funnel}
        ),
        *method_routes(f"{ADMIN}/retention/", {"GET": retention}),
        *method_routes(f"{ADMIN}/behaviour/anomalies/", {"GET": list_anomalies}),
        *experiment_routes(),
        *churn_routes(),
        *method_routes(f"{ADMIN}/destinations/", {"GET": destinations.list_destinations, "POST": destinations.create}),
        *method_routes(
            f"{ADMIN}/destinations/{{destination_id}}/",
            {
                "GET": destinations.get_destination,
                "PUT": destinations.replace_destination,
                "PATCH": destinations.patch_destination,
                "DELETE": destinations.delete_destination,
            },
        ),
        *method_routes(f"{ADMIN}/destinations/{{destination_id}}/replay/", {"POST": destinations.replay}),
        *method_routes(
            f"{ADMIN}/destinations/{{destination_id}}/dead-letters/", {"GET": destinations.list_dead_letters}
        ),
    ]
