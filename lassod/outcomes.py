"""Turn an attempt's result into its stored outcome and the delivery's next state."""

from __future__ import annotations

from lassod import retry
from lassod.delivery import AttemptResult
from lassod.store.deliveries import AttemptJob, AttemptOutcome, UnfinishedAttempt


def decide(
    job: AttemptJob, result: AttemptResult, ended_ms: int, retry_delays_s: tuple[float, ...]
) -> AttemptOutcome:
    """Build the outcome of a finished attempt: succeeded, retry later or abandon."""
    if result.succeeded:
        return _outcome(job.delivery_id, job.number, result, "succeeded", "succeeded", None)
    decision = retry.after_failure(job.number, ended_ms, retry_delays_s)
    if decision.abandon:
        return _outcome(
            job.delivery_id, job.number, result, "failed", "abandoned", None,
            reason="all attempts failed",
        )
    return _outcome(job.delivery_id, job.number, result, "failed", "pending", decision.next_due_ms)


def interrupted(
    attempt: UnfinishedAttempt, now_ms: int, timeout_s: float, retry_delays_s: tuple[float, ...]
) -> AttemptOutcome:
    """Build the outcome of an attempt cut off by a crash or a forced stop.

    It counts as a failure without an answer. It ended by its timeout at the
    latest, so the retry is due that long after it started.
    """
    ended_ms = min(now_ms, attempt.started_ms + round(timeout_s * 1000))
    decision = retry.after_failure(attempt.number, ended_ms, retry_delays_s)
    status = "abandoned" if decision.abandon else "pending"
    return AttemptOutcome(
        delivery_id=attempt.delivery_id,
        number=attempt.number,
        duration_ms=None,
        status_code=None,
        error_kind="interrupted",
        response_excerpt=None,
        attempt_outcome="interrupted",
        delivery_status=status,
        next_due_ms=decision.next_due_ms,
        reason="all attempts failed" if decision.abandon else None,
    )


def _outcome(
    delivery_id: str,
    number: int,
    result: AttemptResult,
    attempt_outcome: str,
    delivery_status: str,
    next_due_ms: int | None,
    reason: str | None = None,
) -> AttemptOutcome:
    return AttemptOutcome(
        delivery_id=delivery_id,
        number=number,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error_kind=result.error_kind,
        response_excerpt=result.response_excerpt,
        attempt_outcome=attempt_outcome,
        delivery_status=delivery_status,
        next_due_ms=next_due_ms,
        reason=reason,
    )
