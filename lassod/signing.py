"""Webhook signatures: X-Lasso-Signature and the Standard Webhooks form."""

from __future__ import annotations

import base64
import binascii
import hmac
from functools import lru_cache

STANDARD_SECRET_PREFIX = "whsec_"


def lasso_signature(secret: str, body: bytes) -> str:
    """Return `sha256=<hex HMAC-SHA256 of body>` keyed by the secret's UTF-8 bytes."""
    return "sha256=" + hmac.digest(secret.encode(), body, "sha256").hex()


# Every signed attempt needs its key, and decoding base64 each time was a
# visible share of an attempt's cost. Secrets are in memory anyway.
@lru_cache(maxsize=1024)
def standard_key(secret: str) -> bytes:
    """Return the HMAC key Standard Webhooks uses for a secret.

    A `whsec_<base64>` secret is its decoded bytes, as that specification
    defines; any other secret is its UTF-8 bytes.
    """
    if secret.startswith(STANDARD_SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(STANDARD_SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def standard_signature(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """Return `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    signed = f"{message_id}.{timestamp_s}.".encode() + body
    digest = hmac.digest(standard_key(secret), signed, "sha256")
    return "v1," + base64.b64encode(digest).decode()


def rotate(
    old_secret: str | None,
    old_previous: tuple[str | None, int | None],
    new_secret: str | None,
    now_ms: int,
    grace_ms: int,
) -> tuple[str | None, int | None]:
    """Return (previous_secret, previous_secret_until_ms) after setting new_secret.

    A changed secret keeps the old one signing for grace_ms. Only one old
    secret is kept, so a second rotation within the grace period drops the
    oldest. Removing the secret, or a grace of 0, keeps none.
    """
    if new_secret == old_secret:
        return old_previous
    if new_secret is None or old_secret is None or grace_ms <= 0:
        return None, None
    return old_secret, now_ms + grace_ms
