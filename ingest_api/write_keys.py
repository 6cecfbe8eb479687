"""Project write keys: the public key an app ships with to send events and read flags.

While no write key exists, capture and flag endpoints stay open (a fresh
install works out of the box). Once one exists, every capture and flag request
must carry an active one: `api_key` or `token` in the JSON body, the
`X-API-Key` header, or an `api_key` / `token` query parameter. The set of
active keys comes from the config cache (no query per request); a revocation
reaches every worker within a second.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request

from eventtrack.errors import ApiError, unavailable

WRITE_KEY_PREFIX = "etw_"
_BODY_FIELDS = ("api_key", "token")
_MAX_KEY = 200


def generate_write_key() -> str:
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(24)


def presented_key(request: Request, body: Any = None) -> str | None:
    """The key a request carries: header, then body, then query string."""
    header = request.headers.get("x-api-key")
    if header:
        return header.strip()
    if isinstance(body, dict):
        for name in _BODY_FIELDS:
            value = body.get(name)
            if isinstance(value, str) and value:
                return value
    for name in _BODY_FIELDS:
        value = request.query_params.get(name)
        if value:
            return value
    return None


def require_write_key(request: Request, body: Any = None, key: str | None = None) -> None:
    """Raises 401 `invalid_api_key` unless write keys are off or the request carries an active one.

    `key`, when given, is the key the caller found itself (e.g. inside a PostHog
    event); otherwise it is looked up in the header, `body` and query string.
    """
    state = request.app.state.eventtrack
    snapshot = state.config.snapshot
    if not snapshot.loaded:
        # Unknown whether keys are required: refuse rather than let anything in.
        raise unavailable(state.settings.retry_after_seconds, "Configuration not loaded yet; retry.")
    if not snapshot.write_keys:
        return
    if key is None:
        key = presented_key(request, body)
    if key is None:
        raise ApiError.of("invalid_api_key", fields={"api_key": "is required"})
    if len(key) > _MAX_KEY or key not in snapshot.write_keys:
        raise ApiError.of(
            "invalid_api_key", "The project write key is unknown or revoked.", {"api_key": "unknown or revoked"}
        )
