"""Request dependencies (Annotated, as FastAPI recommends): the context, a database session, the
current user (bearer token or session cookie, CSRF-checked) and role checks through the policy."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from app.auth.policy import require
from app.auth.tokens import CSRF_HEADER, session_of
from app.context import StudioContext
from app.db.models import User
from app.errors import Forbidden, Unauthenticated
from app.services import users as user_service

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
MAX_ID = 2**31 - 1  # ids are 32-bit integers in every database the studio runs on

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="A row id.")]
IdQuery = Annotated[int, Query(ge=1, le=MAX_ID, description="A row id.")]


async def get_ctx(request: Request) -> StudioContext:
    # async: a sync dependency would wait for a handler thread, and /health must not.
    return request.app.state.ctx


Ctx = Annotated[StudioContext, Depends(get_ctx)]


def get_session(ctx: Ctx) -> Iterator[Session]:
    """A session per request. Handlers that write commit explicitly (then enqueue); anything not
    committed is rolled back when the request ends."""
    session = ctx.sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


DB = Annotated[Session, Depends(get_session)]


def user_from_request(request: Request, session: Session, ctx: StudioContext) -> User | None:
    """The user a request speaks for, or None. Bearer tokens first; else the session cookie."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = user_service.user_for_token(session, auth[7:].strip())
        if user is None:
            raise Unauthenticated("the bearer token is not valid (revoked, or never issued)")
        if session.dirty:
            session.commit()  # last_used_at, touched at most once a minute
        return user
    data = session_of(ctx.settings.fernet_key(), request.cookies)
    if data is None:
        return None
    user = session.get(User, data["uid"])
    if user is None or not user.active or data.get("epoch", 0) != user.session_epoch:
        return None  # deactivated, logged out everywhere, or the password changed since
    if request.method in UNSAFE and not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""),
                                                            str(data.get("csrf", ""))):
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header: a request authenticated by the session cookie "
                        f"must echo the CSRF token it got at login")
    return user


def current_user(request: Request, session: DB, ctx: Ctx) -> User:
    user = user_from_request(request, session, ctx)
    # End the read transaction: its connection goes back to the pool instead of staying checked out
    # while the handler waits for a thread, a model's turn or a generation (the pool is finite).
    session.commit()
    if user is None:
        raise Unauthenticated("log in (POST /api/auth/login) or send 'Authorization: Bearer <token>'")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def allowed_to(action: str):
    """A dependency that lets the request through only if the policy allows `action`."""

    def check(user: CurrentUser) -> User:
        require(user, action)
        return user

    return Depends(check)


def Can(action: str):  # noqa: N802 - reads as a type in signatures: user: Can("runs")
    return Annotated[User, allowed_to(action)]
