"""Retry policy: what follows a failed attempt, as pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime

# Statuses whose Retry-After header lassod honours (RFC 9110 section 10.2.3).
RETRY_AFTER_STATUSES = (429, 503)
GONE = 410
_MAX_DELAY_DIGITS = 15


@dataclass(frozen=True)
class RetryPolicy:
    """The retry schedule and how far receivers and jitter may stretch it."""

    delays_s: tuple[float, ...]
    retry_after_max_s: float = 3600.0
    jitter: float = 0.0


@dataclass(frozen=True)
class RetryDecision:
    """The next due time in Unix milliseconds, or None to abandon."""

    next_due_ms: int | None

    @property
    def abandon(self) -> bool:
        return self.next_due_ms is None


def after_failure(
    attempt_number: int,
    ended_ms: int,
    policy: RetryPolicy,
    retry_after_s: float | None = None,
    jitter_sample: float = 0.5,
) -> RetryDecision:
    """Decide what follows failed attempt number `attempt_number` (1-based).

    A delivery has 1 + len(policy.delays_s) attempts. Retry n is due
    delays_s[n - 1] after the failed attempt ended, scaled by the jitter
    factor that `jitter_sample` (uniform in [0, 1)) picks. A receiver's
    Retry-After can lengthen that delay up to retry_after_max_s but never
    shorten it, and it grants no extra attempts.
    """
    if attempt_number > len(policy.delays_s):
        return RetryDecision(None)
    delay_s = jittered(
        policy.delays_s[attempt_number - 1], policy.jitter, jitter_sample
    )
    if retry_after_s is not None:
        delay_s = max(delay_s, min(retry_after_s, policy.retry_after_max_s))
    return RetryDecision(ended_ms + round(delay_s * 1000))


def jittered(delay_s: float, jitter: float, sample: float) -> float:
    """Scale delay_s by a factor in [1 - jitter, 1 + jitter] chosen by sample."""
    return delay_s * (1 + jitter * (2 * sample - 1))


def parse_retry_after(value: str | None, now_ms: int) -> float | None:
    """Return the wait in seconds that a Retry-After header value requests.

    The value is either delay-seconds or an HTTP date. Returns None when the
    header is absent or invalid, and 0 for a date in the past.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        if len(text) > _MAX_DELAY_DIGITS:
            return math.inf
        return float(int(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # HTTP dates are always GMT; "-0000" parses as a naive time.
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, moment.timestamp() - now_ms / 1000)


def failing_too_long(
    failing_since_ms: int, ended_ms: int, disable_after_s: float
) -> bool:
    """Return whether a failure streak that began at failing_since_ms is too long."""
    return ended_ms - failing_since_ms >= disable_after_s * 1000
