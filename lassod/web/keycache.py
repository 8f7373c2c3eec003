"""A short-lived cache of API key lookups, so most requests skip one database read."""

from __future__ import annotations

import time

# How long a key found in the database is trusted without asking again; a key
# revoked with `lassod keys revoke` stops working within this time.
KEY_CACHE_TTL_S = 1.0
MAX_KEYS = 10_000


class KeyCache:
    """Map key hashes to company ids for KEY_CACHE_TTL_S after a lookup.

    Only keys that were found are kept: an unknown key costs a database read
    every time and counts against the failed-authentication limit.
    """

    def __init__(self, ttl_s: float = KEY_CACHE_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._companies: dict[str, tuple[str, float]] = {}

    def get(self, key_hash: str) -> str | None:
        found = self._companies.get(key_hash)
        if found is None:
            return None
        company_id, expires = found
        if time.monotonic() >= expires:
            del self._companies[key_hash]
            return None
        return company_id

    def put(self, key_hash: str, company_id: str) -> None:
        if len(self._companies) >= MAX_KEYS:
            self._companies.clear()
        self._companies[key_hash] = (company_id, time.monotonic() + self._ttl_s)
