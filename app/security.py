"""API keys at rest: Fernet-encrypted with the server secret; decrypted only to make a request."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from app.errors import Conflict
from app.settings import Settings


def encrypt_secret(settings: Settings, plain: str) -> bytes:
    return Fernet(settings.fernet_key()).encrypt(plain.encode())


class KeyUnreadable(Conflict):
    """A stored key was encrypted with another GAD_SECRET_KEY."""


def decrypt_secret(settings: Settings, blob: bytes) -> str:
    try:
        return Fernet(settings.fernet_key()).decrypt(blob).decode()
    except InvalidToken:
        raise KeyUnreadable("a stored API key cannot be decrypted: GAD_SECRET_KEY changed since it was saved; "
                         "enter the key again") from None
