"""Admin API keys: generated once, stored as SHA-256, checked in constant time (pure)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

ADMIN_KEY_PREFIX = "etadm_"


def generate_admin_key() -> str:
    return ADMIN_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None when missing or malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        return None
    return token


def find_key(presented: str, active_hashes: Iterable[tuple[bytes, int]]) -> int | None:
    """Id of the active key matching `presented`. Every stored hash is compared, each in constant time."""
    digest = hash_key(presented)
    found = None
    for stored, key_id in active_hashes:
        if hmac.compare_digest(stored, digest):
            found = key_id
    return found
