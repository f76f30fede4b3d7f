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
from collections.abc import Mapping

from itsdangerous import BadSignature, URLSafeTimedSerializer

TOKEN_PREFIX = "gad_"
SESSION_COOKIE = "gad_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 14 * 24 * 3600
SESSION_PATH = "/"  # the API, the dashboard and the annotation page share the one cookie


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


def is_secure(setting: str, scheme: str) -> bool:
    """GAD_COOKIE_SECURE: 'true' | 'false' | 'auto' (Secure when the request came over https)."""
    return scheme == "https" if setting == "auto" else setting == "true"


def session_cookie(value: str, secure: bool) -> dict:
    """The session cookie's every attribute, as keyword arguments of Starlette's `Response.set_cookie`:
    HttpOnly (no script reads it), SameSite=Lax (a cross-site POST does not carry it), one path."""
    return dict(key=SESSION_COOKIE, value=value, max_age=SESSION_MAX_AGE, httponly=True, samesite="lax",
                secure=secure, path=SESSION_PATH)


def expired_session_cookie(secure: bool) -> dict:
    """Keyword arguments of `Response.delete_cookie` that remove the cookie session_cookie() set."""
    return dict(key=SESSION_COOKIE, httponly=True, samesite="lax", secure=secure, path=SESSION_PATH)


def session_of(secret: bytes, cookies: Mapping[str, str]) -> dict | None:
    """The session a request's cookies carry ({uid, epoch, csrf}), or None."""
    return read_session(secret, cookies.get(SESSION_COOKIE))
