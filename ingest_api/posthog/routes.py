"""Routes of the PostHog-compatible endpoints (capture and flags)."""

from __future__ import annotations

from starlette.routing import Route

from ingest_api.posthog import capture, flag_routes
from ingest_api.routing import method_routes

# Where PostHog SDKs send events (posthog-js: /e/, /i/v0/e/; mobile and server SDKs: /batch/, /capture/; /track/: legacy).
CAPTURE_PATHS = ("/batch/", "/e/", "/capture/", "/i/v0/e/", "/track/")
RATE_LIMITED_PREFIXES = ("/batch", "/e", "/capture", "/i/v0/e", "/track", "/flags", "/decide", "/ofrep")


def routes() -> list[Route]:
    return [
        *(route for path in CAPTURE_PATHS for route in method_routes(path, {"POST": capture.capture})),
        *method_routes("/flags/", {"POST": flag_routes.flags}),
        *method_routes("/decide/", {"POST": flag_routes.decide}),
    ]
