"""Users, logins and API tokens. There is never a default password."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.auth.passwords import MIN_LENGTH, hash_password, throttle_seconds, verify_password
from app.auth.tokens import new_token, token_hash
from app.db.models import ApiToken, LoginAttempt, User, utcnow
from app.enums import Role
from app.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from app.services.lookup import one

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
    return one(session, User, user_id, "user")


def user_by_name(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def active_user(session: Session, name: str | None) -> User | None:
    """The active user of this name, or None (no name, no such user, or deactivated)."""
    user = session.scalar(select(User).where(User.name == name)) if name else None
    return user if user is not None and user.active else None


def user_for_session(session: Session, user_id: int, epoch: int) -> User | None:
    """The user a session cookie names, or None if the cookie no longer holds: the user is gone or
    deactivated, or logged out everywhere / changed the password since (the epoch moved on)."""
    user = session.get(User, user_id)
    if user is None or not user.active or epoch != user.session_epoch:
        return None
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


def set_password(session: Session, user: User, password: str, *, keep_tokens: bool = False) -> None:
    """A new password also ends every browser session of the user (a stolen cookie stops working) and,
    unless keep_tokens, revokes every API token of theirs (a leaked token stops working too)."""
    _check_password(password)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.session_epoch = (user.session_epoch or 0) + 1
    if not keep_tokens:
        session.execute(delete(ApiToken).where(ApiToken.user_id == user.id)
                        .execution_options(synchronize_session=False))
    session.execute(delete(LoginAttempt).where(LoginAttempt.key == _name_key(user.name)))
    session.flush()


def end_sessions(session: Session, user_id: int, epoch: int) -> None:
    """Log a user out everywhere: only cookies of a later epoch count. Conditional on `epoch`, so a
    stale cookie's logout does not end the sessions made since."""
    session.execute(update(User).where(User.id == user_id, User.session_epoch == epoch)
                    .values(session_epoch=User.session_epoch + 1).execution_options(synchronize_session=False))


NAME_FREE_TRIES = 3        # failures of one user name before each try must wait (2, 4, 8 ... 300 s)
ADDRESS_FREE_TRIES = 20    # failures from one client address (several people may share it) before it waits
FORGET_AFTER = timedelta(days=1)


def _name_key(name: str) -> str:
    return f"name:{name[:190]}"


def authenticate(session: Session, name: str, password: str, now: datetime | None = None,
                 address: str | None = None) -> User:
    """The user, or Unauthenticated (401); too many failures for the name or the address: LoginThrottled
    (429). Known and unknown names are counted and answered alike, so neither the answer nor its
    timing says whether a name exists.

    The attempt is counted (and committed) before the password is checked: parallel guesses each
    see the ones before them, and only the first few of a burst are ever checked. A success gives
    the attempt back."""
    now = now or datetime.now(UTC)
    keys = sorted({_name_key(name)} | ({f"addr:{address[:190]}"} if address else set()))
    _count_attempt(session, keys, now)
    user = session.scalar(select(User).where(User.name == name))
    if user is None or not user.active:
        verify_password(_dummy_hash(), password)  # as slow as a real check: timing says nothing of names
        raise Unauthenticated("wrong user name or password")
    if not verify_password(user.password_hash, password):
        raise Unauthenticated("wrong user name or password")
    session.execute(update(LoginAttempt).where(LoginAttempt.key == _name_key(name)).values(failures=0)
                    .execution_options(synchronize_session=False))
    session.execute(update(LoginAttempt).where(LoginAttempt.key.startswith("addr:"), LoginAttempt.key.in_(keys),
                                               LoginAttempt.failures > 0)
                    .values(failures=LoginAttempt.failures - 1).execution_options(synchronize_session=False))
    user.failed_logins = 0
    session.flush()
    return user


def _count_attempt(session: Session, keys: list[str], now: datetime) -> None:
    """Add this attempt to every key's count in one committed transaction, or refuse it (rolled back,
    so a throttled try neither counts nor extends the wait). Rows are locked in key order."""
    session.commit()  # start clean: the counting transaction holds nothing else
    for key in keys:
        if _ensure_row(session, key):
            session.execute(delete(LoginAttempt).where(LoginAttempt.last_failed_at < now - FORGET_AFTER))
        failures, previous = session.execute(
            update(LoginAttempt).where(LoginAttempt.key == key)
            .values(failures=LoginAttempt.failures + 1, prev_failed_at=LoginAttempt.last_failed_at, last_failed_at=now)
            .returning(LoginAttempt.failures, LoginAttempt.prev_failed_at)
            .execution_options(synchronize_session=False)).one()
        free = ADDRESS_FREE_TRIES if key.startswith("addr:") else NAME_FREE_TRIES
        wait = throttle_seconds(failures - 1, free)
        until = _aware(previous) + timedelta(seconds=wait) if previous is not None and wait else None
        if until is not None and now < until:
            session.rollback()
            raise LoginThrottled(f"too many failed logins for this user name or from this address; try again in "
                                 f"{int((until - now).total_seconds()) + 1} s",
                                 retry_after=(until - now).total_seconds())
    session.commit()


def _ensure_row(session: Session, key: str) -> bool:
    """Insert the key's counter if it is missing (no error if another request just did); True if new."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    result = session.execute(insert(LoginAttempt).values(key=key, failures=0).on_conflict_do_nothing())
    return bool(result.rowcount)


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
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


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
