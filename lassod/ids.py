"""Identifiers and API keys."""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid

API_KEY_PREFIX = "lasso_"
API_KEY_LENGTH = 70
_KEY_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """Return `<prefix>_` followed by 24 random hex characters."""
    return f"{prefix}_{secrets.token_hex(12)}"


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_api_key() -> str:
    """Return a 70-character key: `lasso_` and 64 random letters and digits."""
    length = API_KEY_LENGTH - len(API_KEY_PREFIX)
    return API_KEY_PREFIX + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))


def hash_api_key(key: str) -> str:
    """Return the SHA-256 hex digest stored in place of a key.

    A plain hash suffices because keys carry 380 random bits; a slow password
    hash would only slow every request.
    """
    return hashlib.sha256(key.encode()).hexdigest()
