"""Encryption at rest for HMAC secrets: Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``.

``FLK_ENCRYPTION_KEYS`` lists Fernet keys, newest first. New secrets are encrypted with the first; any
listed key decrypts. To rotate: put a new key first, keep the old one after it, run
``manage.py tenant reencrypt``, then drop the old key.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FLK_ENCRYPTION_KEYS is empty: secrets cannot be stored")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured("FLK_ENCRYPTION_KEYS holds a key that is not a Fernet key") from exc


def _current() -> MultiFernet:
    return _fernet(tuple(settings.FLK_ENCRYPTION_KEYS))


def encrypt_secret(secret: bytes) -> str:
    """Encrypt with the newest key."""
    return _current().encrypt(secret).decode()


def decrypt_secret(token: str) -> bytes:
    """Decrypt with whichever listed key encrypted it."""
    try:
        return _current().decrypt(token.encode())
    except InvalidToken as exc:
        raise ImproperlyConfigured("a stored secret does not decrypt with FLK_ENCRYPTION_KEYS") from exc


def reencrypt_secret(token: str) -> str:
    """The same secret under the newest key."""
    return _current().rotate(token.encode()).decode()


def new_encryption_key() -> str:
    """A fresh Fernet key."""
    return Fernet.generate_key().decode()
