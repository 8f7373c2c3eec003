"""Token-bucket rate limits: per API key, and per client for failed authentication."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from lassod.config import ServerSettings

MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class TokenBuckets:
    """Token buckets keyed by string: `burst` tokens, refilled at `rate_per_s`.

    At most `max_buckets` are kept. The least recently used is dropped first,
    which at worst gives its owner a fresh burst.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def wait_s(self, key: str) -> float:
        """Return the seconds until `key` has a token; 0 when it has one now."""
        tokens = self._refilled(key).tokens
        if tokens >= 1:
            return 0.0
        return (1 - tokens) / self.rate_per_s

    def take(self, key: str) -> float:
        """Take a token if one is left; return wait_s as it was before taking."""
        bucket = self._refilled(key)
        if bucket.tokens < 1:
            return (1 - bucket.tokens) / self.rate_per_s
        bucket.tokens -= 1
        return 0.0

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated_s)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate_per_s)
            bucket.updated_s = now
        return bucket


@dataclass(frozen=True)
class RateLimits:
    """The API's limits: requests per key, and failed authentications per client."""

    per_key: TokenBuckets
    failed_auth: TokenBuckets

    @classmethod
    def from_settings(cls, server: ServerSettings) -> RateLimits:
        return cls(
            per_key=TokenBuckets(server.rate_limit_per_s, server.rate_limit_burst),
            failed_auth=TokenBuckets(
                server.failed_auth_per_s, server.failed_auth_burst
            ),
        )


def client_key(remote: str | None) -> str:
    """Return the rate-limit key of a client address.

    An IPv6 client usually has a whole /64 to pick addresses from, so the
    /64 is the key.
    """
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def retry_after_s(wait_s: float) -> int:
    """Return a Retry-After value in whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))
