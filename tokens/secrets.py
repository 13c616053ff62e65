"""Token material: generation, hashing and the display hint. Plaintext never leaves here stored."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

WORKSPACE_PREFIX = "wst_"
ADMIN_PREFIX = "adm_"
BODY_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits
WORKSPACE_TOKEN_RE = re.compile(r"^wst_[A-Za-z0-9]{40}$")
ADMIN_TOKEN_RE = re.compile(r"^adm_[A-Za-z0-9]{40}$")


def generate_token(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(BODY_LENGTH))


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hint(raw: str) -> tuple[str, str]:
    """First 8 and last 4 characters, kept to show a masked token."""
    return raw[:8], raw[-4:]


def masked(prefix: str, suffix: str) -> str:
    return f"{prefix}…{suffix}"
