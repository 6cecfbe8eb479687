"""Routes of the PostHog-compatible endpoints (capture and flags)."""

from __future__ import annotations

from starlette.routing import Route

from ingest_api.posthog import capture, flag_routes

# Where PostHog SDKs send events (posthog-js: /e/, /i/v0/e/; mobile and server SDKs: /batch/, /capture/; /track/: legacy).
CAPTURE_PATHS = ("/batch/", "/e/", "/capture/", "/i/v0/e/", "/track/")
RATE_LIMITED_PREFIXES = ("/batch", "/e", "/capture", "/i/v0/e", "/track", "/flags", "/decide", "/ofrep")


def _both(path: str, endpoint, methods: list[str]) -> list[Route]:
    return [Route(path, endpoint, methods=methods), Route(path.rstrip("/"), endpoint, methods=methods)]


def routes() -> list[Route]:
    return [
        *(route for path in CAPTURE_PATHS for route in _both(path, capture.capture, ["POST"])),
        *_both("/flags/", flag_routes.flags, ["POST"]),
        *_both("/decide/", flag_routes.decide, ["POST"]),
    ]
