"""The dashboard's session: a signed cookie holding a session id, the admin key's id and a CSRF token.

Pure apart from reading/creating the secret file. The key itself is never
stored in the cookie: only the id of the admin key it matched, which is checked
against the active keys on every request, so revoking a key ends its sessions.
The session id names a row of `dashboard_sessions` (session_store.py): signing
out deletes it, so a copy of the cookie taken before is worth nothing after.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "eventtrack_admin"
COOKIE_PATH = "/admin/"
SECRET_FILE = "dashboard_secret"


@dataclass(frozen=True)
class Session:
    csrf: str
    key_id: int | None = None  # None: not signed in (the sign-in form still needs a CSRF token)
    session_id: str | None = None  # set with key_id: the server-side record of the sign-in

    @property
    def signed_in(self) -> bool:
        return self.key_id is not None


def new_session(key_id: int | None = None, session_id: str | None = None) -> Session:
    return Session(csrf=secrets.token_urlsafe(32), key_id=key_id, session_id=session_id)


class SessionCodec:
    def __init__(self, secret: str, max_age_seconds: int):
        self._serializer = URLSafeTimedSerializer(secret, salt="eventtrack-dashboard-session")
        self.max_age_seconds = max_age_seconds

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps({"c": session.csrf, "k": session.key_id, "s": session.session_id})

    def loads(self, token: str | None) -> Session | None:
        """The session of a cookie value; None when missing, tampered with, expired or malformed."""
        if not token or len(token) > 4096:
            return None
        try:
            data = self._serializer.loads(token, max_age=self.max_age_seconds)
        except BadSignature:  # SignatureExpired is a subclass
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        key_id, session_id = data.get("k"), data.get("s")
        if key_id is not None and not (isinstance(key_id, int) and isinstance(session_id, str)):
            return None  # a signed-in cookie without a session id predates server-side sessions
        return Session(csrf=data["c"], key_id=key_id, session_id=session_id if key_id is not None else None)


def csrf_ok(session: Session | None, presented: str | None) -> bool:
    return bool(session and presented) and hmac.compare_digest(session.csrf.encode(), presented.encode())


def cookie_header(value: str, *, max_age: int, secure: bool) -> str:
    """Set-Cookie value: HttpOnly, SameSite=Lax, scoped to /admin/; Secure over https (or when configured)."""
    parts = [f"{COOKIE_NAME}={value}", f"Path={COOKIE_PATH}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def load_or_create_secret(data_dir: Path) -> str:
    """The persisted random secret under data_dir, created on first use (0600).

    Written to a private temp file and hard-linked into place, so concurrent
    workers never read a half-written file and the first one to link wins.
    """
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
