"""Retry policy: what follows a failed attempt, as a pure function."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryDecision:
    """The next due time in Unix milliseconds, or None to abandon."""

    next_due_ms: int | None

    @property
    def abandon(self) -> bool:
        return self.next_due_ms is None


def after_failure(
    attempt_number: int, ended_ms: int, retry_delays_s: tuple[float, ...]
) -> RetryDecision:
    """Decide what follows failed attempt number `attempt_number` (1-based).

    A delivery has 1 + len(retry_delays_s) attempts. Retry n is due
    retry_delays_s[n - 1] after the failed attempt ended.
    """
    if attempt_number > len(retry_delays_s):
        return RetryDecision(None)
    delay_ms = round(retry_delays_s[attempt_number - 1] * 1000)
    return RetryDecision(ended_ms + delay_ms)
