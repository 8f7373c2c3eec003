"""Retry decisions, Retry-After parsing and outcome rules: pure, no clock or I/O."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from lassod import outcomes, retry, signing
from lassod.config import DeliverySettings
from lassod.delivery import AttemptResult
from lassod.store.deliveries import AttemptJob

POLICY = retry.RetryPolicy(delays_s=(30.0, 300.0, 1800.0), retry_after_max_s=3600.0)
NOW_MS = 1_800_000_000_000


class TestAfterFailure:
    def test_follows_schedule(self):
        assert retry.after_failure(1, NOW_MS, POLICY).next_due_ms == NOW_MS + 30_000
        assert retry.after_failure(3, NOW_MS, POLICY).next_due_ms == NOW_MS + 1_800_000

    def test_gives_up_after_last_retry(self):
        assert retry.after_failure(4, NOW_MS, POLICY).abandon

    def test_retry_after_lengthens_delay(self):
        decision = retry.after_failure(1, NOW_MS, POLICY, retry_after_s=120)
        assert decision.next_due_ms == NOW_MS + 120_000

    def test_retry_after_never_shortens_delay(self):
        decision = retry.after_failure(2, NOW_MS, POLICY, retry_after_s=5)
        assert decision.next_due_ms == NOW_MS + 300_000

    def test_retry_after_clamped_to_maximum(self):
        decision = retry.after_failure(1, NOW_MS, POLICY, retry_after_s=86_400)
        assert decision.next_due_ms == NOW_MS + 3_600_000

    def test_retry_after_grants_no_extra_attempt(self):
        assert retry.after_failure(4, NOW_MS, POLICY, retry_after_s=10).abandon

    def test_no_jitter_keeps_schedule_exact(self):
        for sample in (0.0, 0.3, 0.999):
            decision = retry.after_failure(1, NOW_MS, POLICY, jitter_sample=sample)
            assert decision.next_due_ms == NOW_MS + 30_000

    @pytest.mark.parametrize(
        ("sample", "delay_ms"), [(0.0, 24_000), (0.5, 30_000), (1.0, 36_000)]
    )
    def test_jitter_scales_within_fraction(self, sample, delay_ms):
        policy = retry.RetryPolicy(delays_s=(30.0,), jitter=0.2)
        decision = retry.after_failure(1, NOW_MS, policy, jitter_sample=sample)
        assert decision.next_due_ms == NOW_MS + delay_ms


class TestParseRetryAfter:
    def test_seconds(self):
        assert retry.parse_retry_after("120", NOW_MS) == 120.0
        assert retry.parse_retry_after(" 0 ", NOW_MS) == 0.0

    def test_http_date(self):
        moment = datetime.fromtimestamp(NOW_MS / 1000 + 90, tz=timezone.utc)
        header = format_datetime(moment, usegmt=True)
        assert retry.parse_retry_after(header, NOW_MS) == pytest.approx(90, abs=1)

    def test_past_date_is_zero(self):
        assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW_MS) == 0.0

    def test_huge_number_is_infinite(self):
        assert retry.parse_retry_after("9" * 5000, NOW_MS) == math.inf

    @pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "٣"])
    def test_invalid_is_none(self, value):
        assert retry.parse_retry_after(value, NOW_MS) is None


class TestFailingTooLong:
    def test_boundary(self):
        assert retry.failing_too_long(NOW_MS - 5_000, NOW_MS, 5.0)
        assert not retry.failing_too_long(NOW_MS - 4_999, NOW_MS, 5.0)


def job(
    kind: str = "table", number: int = 1, failing_since_ms: int | None = None
) -> AttemptJob:
    return AttemptJob(
        delivery_id="dlv_1",
        company_id="cmp_1",
        endpoint_id="sub_1" if kind == "subscription" else "tbl_1",
        endpoint_kind=kind,
        event_id="evt_1",
        event_name="table.completed",
        body=b"{}",
        number=number,
        attempt_id="a",
        started_ms=NOW_MS - 100,
        url="http://127.0.0.1/hook",
        secret=None,
        previous_secret=None,
        auth_header_name=None,
        auth_header_value=None,
        endpoint_failing_since_ms=failing_since_ms,
    )


SETTINGS = DeliverySettings(
    retry_delays_s=(30.0, 300.0), disable_after_failing_s=3600.0
)


def failed(status: int, retry_after: str | None = None) -> AttemptResult:
    return AttemptResult(
        succeeded=False, duration_ms=5, status_code=status, retry_after=retry_after
    )


class TestDecide:
    def test_success(self):
        result = AttemptResult(succeeded=True, duration_ms=5, status_code=200)
        outcome = outcomes.decide(job(), result, NOW_MS, SETTINGS)
        assert outcome.delivery_status == "succeeded"
        assert outcome.endpoint_id == "tbl_1"

    def test_429_honours_retry_after(self):
        outcome = outcomes.decide(job(), failed(429, "600"), NOW_MS, SETTINGS)
        assert outcome.next_due_ms == NOW_MS + 600_000

    def test_503_honours_retry_after(self):
        outcome = outcomes.decide(job(), failed(503, "45"), NOW_MS, SETTINGS)
        assert outcome.next_due_ms == NOW_MS + 45_000

    def test_500_ignores_retry_after(self):
        outcome = outcomes.decide(job(), failed(500, "600"), NOW_MS, SETTINGS)
        assert outcome.next_due_ms == NOW_MS + 30_000

    def test_gone_abandons_table_delivery(self):
        outcome = outcomes.decide(job(), failed(410), NOW_MS, SETTINGS)
        assert outcome.delivery_status == "abandoned"
        assert outcome.reason == "receiver answered 410 Gone"
        assert outcome.deactivate_reason is None

    def test_gone_deactivates_subscription(self):
        outcome = outcomes.decide(job("subscription"), failed(410), NOW_MS, SETTINGS)
        assert outcome.delivery_status == "abandoned"
        assert outcome.deactivate_reason == "receiver answered 410 Gone"
        assert outcome.deactivate_if_failing_since_ms is None

    def test_long_failing_subscription_deactivated(self):
        since = NOW_MS - 3_600_000
        outcome = outcomes.decide(
            job("subscription", failing_since_ms=since), failed(500), NOW_MS, SETTINGS
        )
        assert outcome.delivery_status == "pending"
        assert outcome.deactivate_reason.startswith("every attempt failed since ")
        assert outcome.deactivate_if_failing_since_ms == since

    def test_short_failing_subscription_kept(self):
        since = NOW_MS - 3_599_000
        outcome = outcomes.decide(
            job("subscription", failing_since_ms=since), failed(500), NOW_MS, SETTINGS
        )
        assert outcome.deactivate_reason is None

    def test_long_failing_table_kept(self):
        outcome = outcomes.decide(
            job("table", failing_since_ms=0), failed(500), NOW_MS, SETTINGS
        )
        assert outcome.deactivate_reason is None


class TestRotate:
    def test_changed_secret_keeps_old_for_grace(self):
        assert signing.rotate("old", (None, None), "new", NOW_MS, 1000) == (
            "old",
            NOW_MS + 1000,
        )

    def test_same_secret_keeps_previous(self):
        assert signing.rotate("s", ("p", 5), "s", NOW_MS, 1000) == ("p", 5)

    def test_removed_secret_keeps_none(self):
        assert signing.rotate("old", ("p", 5), None, NOW_MS, 1000) == (None, None)

    def test_first_secret_keeps_none(self):
        assert signing.rotate(None, (None, None), "new", NOW_MS, 1000) == (None, None)

    def test_zero_grace_keeps_none(self):
        assert signing.rotate("old", (None, None), "new", NOW_MS, 0) == (None, None)
