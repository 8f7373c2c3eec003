"""Turn an attempt's result into its stored outcome and the delivery's next state."""

from __future__ import annotations

from dataclasses import replace

from lassod import retry
from lassod.clock import iso_ms
from lassod.config import DeliverySettings
from lassod.delivery import AttemptResult
from lassod.store.deliveries import AttemptJob, AttemptOutcome, UnfinishedAttempt

SUBSCRIPTION = "subscription"
ALL_FAILED = "all attempts failed"
GONE_REASON = "receiver answered 410 Gone"


def policy(settings: DeliverySettings) -> retry.RetryPolicy:
    return retry.RetryPolicy(
        delays_s=settings.retry_delays_s,
        retry_after_max_s=settings.retry_after_max_s,
        jitter=settings.retry_jitter,
    )


def decide(
    job: AttemptJob,
    result: AttemptResult,
    ended_ms: int,
    settings: DeliverySettings,
    jitter_sample: float = 0.5,
) -> AttemptOutcome:
    """Build the outcome of a finished attempt: succeeded, retry later or abandon.

    A 410 Gone abandons at once and deactivates a subscription endpoint. A
    subscription endpoint whose attempts have all failed for
    disable_after_failing_s is deactivated too.
    """
    if result.succeeded:
        return _outcome(job, result, "succeeded", "succeeded", None)
    if result.status_code == retry.GONE:
        outcome = _outcome(job, result, "failed", "abandoned", None, reason=GONE_REASON)
        if job.endpoint_kind == SUBSCRIPTION:
            outcome = replace(outcome, deactivate_reason=GONE_REASON)
        return outcome

    retry_after_s = None
    if result.status_code in retry.RETRY_AFTER_STATUSES:
        retry_after_s = retry.parse_retry_after(result.retry_after, ended_ms)
    decision = retry.after_failure(
        job.number, ended_ms, policy(settings), retry_after_s, jitter_sample
    )
    if decision.abandon:
        outcome = _outcome(job, result, "failed", "abandoned", None, reason=ALL_FAILED)
    else:
        outcome = _outcome(job, result, "failed", "pending", decision.next_due_ms)
    return _with_streak_check(job, outcome, ended_ms, settings.disable_after_failing_s)


def _with_streak_check(
    job: AttemptJob, outcome: AttemptOutcome, ended_ms: int, disable_after_s: float
) -> AttemptOutcome:
    if job.endpoint_kind != SUBSCRIPTION:
        return outcome
    since_ms = job.endpoint_failing_since_ms
    if since_ms is None:
        since_ms = job.started_ms
    if not retry.failing_too_long(since_ms, ended_ms, disable_after_s):
        return outcome
    return replace(
        outcome,
        deactivate_reason=f"every attempt failed since {iso_ms(since_ms)}",
        deactivate_if_failing_since_ms=since_ms,
    )


def interrupted(
    attempt: UnfinishedAttempt, now_ms: int, settings: DeliverySettings
) -> AttemptOutcome:
    """Build the outcome of an attempt cut off by a crash or a forced stop.

    It counts as a failure without a response. It ended by its timeout at the
    latest, so the retry is due that long after it started.
    """
    ended_ms = min(now_ms, attempt.started_ms + round(settings.timeout_s * 1000))
    decision = retry.after_failure(attempt.number, ended_ms, policy(settings))
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
        reason=ALL_FAILED if decision.abandon else None,
    )


def _outcome(
    job: AttemptJob,
    result: AttemptResult,
    attempt_outcome: str,
    delivery_status: str,
    next_due_ms: int | None,
    reason: str | None = None,
) -> AttemptOutcome:
    return AttemptOutcome(
        delivery_id=job.delivery_id,
        number=job.number,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error_kind=result.error_kind,
        response_excerpt=result.response_excerpt,
        attempt_outcome=attempt_outcome,
        delivery_status=delivery_status,
        next_due_ms=next_due_ms,
        reason=reason,
        endpoint_id=job.endpoint_id,
        started_ms=job.started_ms,
    )
