"""API tokens and browser sessions.

Tokens: `gad_` + 32 random url-safe bytes; the database keeps only their SHA-256, so a leaked
database leaks no usable token. Sessions: a signed (itsdangerous), timestamped cookie holding the
user id and a CSRF token; the cookie is HttpOnly and SameSite=Lax, and every state-changing
request authenticated by it must echo the CSRF token in the `X-CSRF-Token` header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

TOKEN_PREFIX = "gad_"
SESSION_COOKIE = "gad_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 14 * 24 * 3600


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_serializer(secret: bytes) -> URLSafeTimedSerializer:
    # A key of its own, derived from the server secret, so cookies and stored API keys never share one.
    key = hmac.new(secret, b"gad-studio session cookie", hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(key, salt="session")


def make_session(secret: bytes, user_id: int, epoch: int = 0) -> tuple[str, str]:
    """(cookie value, csrf token). `epoch` is the user's session epoch: bumping it (logout, a new
    password) ends every cookie issued before."""
    csrf = secrets.token_urlsafe(24)
    return session_serializer(secret).dumps({"uid": user_id, "epoch": epoch, "csrf": csrf}), csrf


def read_session(secret: bytes, cookie: str | None) -> dict | None:
    if not cookie:
        return None
    try:
        data = session_serializer(secret).loads(cookie, max_age=SESSION_MAX_AGE)
    except BadSignature:  # also covers SignatureExpired
        return None
    return data if isinstance(data, dict) and isinstance(data.get("uid"), int) else None
