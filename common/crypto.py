"""Secrets at rest: MultiFernet over ENCRYPTION_KEYS (newest first), so keys can be rotated.

With no ENCRYPTION_KEYS (development), keys are derived from SECRET_KEY (and its fallbacks).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    """A stored value cannot be decrypted with any configured key."""


def _derived_key(secret_key: str) -> bytes:
    digest = hashlib.sha256(b"integrations-api:encryption:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "ENCRYPTION_KEYS must be comma-separated Fernet keys (32 url-safe base64 bytes)"
        ) from None


def configured_keys() -> tuple[str, ...]:
    """ENCRYPTION_KEYS; without them, keys derived from SECRET_KEY and then each of
    SECRET_KEY_FALLBACKS, so values encrypted before a SECRET_KEY rotation still decrypt."""
    keys = tuple(settings.ENCRYPTION_KEYS)
    if keys:
        return keys
    return tuple(_derived_key(key).decode() for key in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS))


def fernet() -> MultiFernet:
    return _multifernet(configured_keys())


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored secret cannot be decrypted with the configured ENCRYPTION_KEYS"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt a stored value with the newest key."""
    return fernet().rotate(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """Text encrypted with Fernet in the database, plaintext on the model instance.

    Ciphertexts are randomised, so the column cannot be filtered on.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None:
            return None
        return decrypt(value)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None:
            return None
        return encrypt(str(value))
