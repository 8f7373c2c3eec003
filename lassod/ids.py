"""Identifiers and API keys."""

from __future__ import annotations

import hashlib
import os
import secrets
import string
import time

API_KEY_PREFIX = "lasso_"
API_KEY_LENGTH = 70
_KEY_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """Return `<prefix>_` followed by 24 random hex characters."""
    return f"{prefix}_{secrets.token_hex(12)}"


def new_ordered_id(prefix: str) -> str:
    """Return `<prefix>_`, the time in milliseconds as 12 hex characters, and
    16 random hex characters.

    Ids of one prefix created later sort later (to the millisecond), so rows
    created together sit together in an index keyed by id. Deliveries are
    read and updated in roughly the order they were created. With random ids
    each one touched its own index pages, so a group commit of 100
    deliveries wrote about 200 pages to the WAL instead of about 40.
    """
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}"


def new_uuid() -> str:
    """Return a random (version 4) UUID in its 36-character form.

    Built from os.urandom directly: uuid.uuid4() and str() on it take more
    than twice as long, and every attempt gets a new one.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


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
