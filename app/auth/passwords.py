"""Password hashing (argon2id via argon2-cffi) and the slowdown after failed logins."""

from __future__ import annotations

from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id, the library's current recommended parameters
MIN_LENGTH = 8


def hash_password(plain: str) -> str:
    return _HASHER.hash(plain)


def verify_password(stored: str | None, plain: str) -> bool:
    if not stored:
        return False
    try:
        return _HASHER.verify(stored, plain)
    except (VerificationError, InvalidHashError):
        return False


def lockout_seconds(failed_logins: int) -> float:
    """Wait before the next try: none for the first 3 failures, then 2, 4, 8 ... up to 300 s."""
    if failed_logins < 3:
        return 0.0
    return float(min(300, 2 ** (failed_logins - 2)))


def locked_until(failed_logins: int, last_failed_at: datetime | None) -> datetime | None:
    wait = lockout_seconds(failed_logins)
    if not wait or last_failed_at is None:
        return None
    return last_failed_at + timedelta(seconds=wait)


def throttle_seconds(failures: int, free_tries: int) -> float:
    """Wait before the next try after `failures` counted failures: none for the first `free_tries`,
    then 2, 4, 8 ... up to 300 s (lockout_seconds is the case free_tries = 3)."""
    if failures < free_tries:
        return 0.0
    return float(min(300, 2 ** (failures - free_tries + 1)))
