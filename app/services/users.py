"""Users, logins and API tokens. There is never a default password."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import lru_cache

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.auth.passwords import MIN_LENGTH, hash_password, locked_until, verify_password
from app.auth.tokens import new_token, token_hash
from app.db.models import ApiToken, User, utcnow
from app.enums import Role
from app.errors import Conflict, InvalidInput, NotFound, Unauthenticated

TOKEN_TOUCH_SECONDS = 60
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,119}$")


def _check_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_LENGTH} characters", field="password")


def create_user(session: Session, name: str, role: str, password: str | None = None) -> User:
    if not NAME.match(name or ""):
        raise InvalidInput("user name: 1-120 letters, digits, '.', '_', '@' or '-', starting with a letter or "
                           "digit", field="name")
    if role not in Role.__members__:
        raise InvalidInput(f"role must be one of {', '.join(Role)}, got {role!r}", field="role")
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"a user named {name!r} exists already", field="name")
    if password is not None:
        _check_password(password)
    user = User(name=name, role=Role(role), password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def user_by_name(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def update_user(session: Session, user_id: int, *, role: str | None = None, active: bool | None = None,
                actor: User | None = None) -> User:
    user = get_user(session, user_id)
    if actor is not None and actor.id == user.id and (active is False or (role is not None and role != user.role)):
        # An admin locking themselves out (or demoting the last admin) is never what they meant.
        raise Conflict("you cannot deactivate your own account or change your own role; ask another admin")
    if role is not None:
        if role not in Role.__members__:
            raise InvalidInput(f"role must be one of {', '.join(Role)}, got {role!r}", field="role")
        user.role = Role(role)
    if active is not None:
        user.active = active
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """A new password also ends every browser session of the user (a stolen cookie stops working)."""
    _check_password(password)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.session_epoch = (user.session_epoch or 0) + 1
    session.flush()


def end_sessions(session: Session, user_id: int, epoch: int) -> None:
    """Log a user out everywhere: only cookies of a later epoch count. Conditional on `epoch`, so a
    stale cookie's logout does not end the sessions made since."""
    session.execute(update(User).where(User.id == user_id, User.session_epoch == epoch)
                    .values(session_epoch=User.session_epoch + 1).execution_options(synchronize_session=False))


def authenticate(session: Session, name: str, password: str, now: datetime | None = None) -> User:
    """The user, or Unauthenticated; repeated failures lock the name for a growing while (429 upstream)."""
    now = now or datetime.now(timezone.utc)
    user = session.scalar(select(User).where(User.name == name))
    if user is None or not user.active:
        verify_password(_dummy_hash(), password)  # as slow as a real check: timing says nothing of names
        raise Unauthenticated("wrong user name or password")
    until = locked_until(user.failed_logins, _aware(user.last_failed_at))
    if until is not None and now < until:
        raise LoginThrottled(f"too many failed logins for {name!r}; try again in {int((until - now).total_seconds()) + 1} s",
                             retry_after=(until - now).total_seconds())
    if not verify_password(user.password_hash, password):
        # In SQL, not Python: parallel guesses must each count.
        session.execute(update(User).where(User.id == user.id)
                        .values(failed_logins=User.failed_logins + 1, last_failed_at=now)
                        .execution_options(synchronize_session=False))
        raise Unauthenticated("wrong user name or password")
    user.failed_logins = 0
    session.flush()
    return user


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("not a password anyone has: the timing of an unknown name")


class LoginThrottled(Unauthenticated):
    http_status, title = 429, "too_many_attempts"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


def create_token(session: Session, user: User, name: str = "token") -> tuple[ApiToken, str]:
    """(row, the token itself): the token is returned once and only its hash is stored."""
    token = new_token()
    row = ApiToken(user_id=user.id, name=name[:120] or "token", token_hash=token_hash(token), prefix=token[:10])
    session.add(row)
    session.flush()
    return row, token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    now = utcnow()
    last = _aware(row.last_used_at)
    if last is None or (now - last).total_seconds() > TOKEN_TOUCH_SECONDS:
        row.last_used_at = now  # at most once a minute: a write per request would serialise every reader
    return user


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def revoke_token(session: Session, user: User, token_id: int) -> None:
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != user.id and user.role != Role.admin):
        raise NotFound(f"no token with id {token_id}")
    session.delete(row)
    session.flush()


def has_admin(session: Session) -> bool:
    return session.scalar(select(User.id).where(User.role == Role.admin).limit(1)) is not None
