"""Retry-After, 410 Gone and deactivation of failing subscriptions, end to end."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from tests.conftest import eventually, make_settings
from tests.delivery_helpers import (
    add_subscription_endpoint,
    always,
    company_of,
    complete,
    create_table,
    emit,
    fail_times,
    get_endpoint,
    wait_for_status,
)


async def gap_between_first_two(receiver) -> float:
    loop = asyncio.get_running_loop()
    await receiver.wait_for(1)
    first = loop.time()
    await receiver.wait_for(2)
    return loop.time() - first


async def start_fast(start_lassod, tmp_path, **delivery):
    values = {"retry_delays_s": (0.1, 0.1, 0.1)}
    values.update(delivery)
    return await start_lassod(make_settings(tmp_path, delivery=values))


async def test_retry_after_seconds_on_429(start_lassod, tmp_path, make_receiver):
    lassod = await start_fast(start_lassod, tmp_path)
    receiver = await make_receiver(fail_times(1, 429, {"Retry-After": "1"}))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])

    waited = await gap_between_first_two(receiver)
    assert 0.9 <= waited < 2.0


async def test_retry_after_http_date_on_503(start_lassod, tmp_path, make_receiver):
    lassod = await start_fast(start_lassod, tmp_path)

    async def unavailable_once(request, number):
        from aiohttp import web

        if number > 1:
            return web.Response(status=204)
        later = datetime.now(timezone.utc) + timedelta(seconds=2)
        header = format_datetime(later, usegmt=True)
        return web.Response(status=503, headers={"Retry-After": header})

    receiver = await make_receiver(unavailable_once)
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])

    # An HTTP date has whole seconds, so the wait is 1 to 2 s.
    waited = await gap_between_first_two(receiver)
    assert 0.9 <= waited < 3.0


async def test_retry_after_clamped_to_maximum(start_lassod, tmp_path, make_receiver):
    lassod = await start_fast(start_lassod, tmp_path, retry_after_max_s=0.5)
    receiver = await make_receiver(fail_times(1, 429, {"Retry-After": "3600"}))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])

    waited = await gap_between_first_two(receiver)
    assert 0.4 <= waited < 1.5


async def test_retry_after_ignored_on_500(start_lassod, tmp_path, make_receiver):
    lassod = await start_fast(start_lassod, tmp_path)
    receiver = await make_receiver(fail_times(1, 500, {"Retry-After": "30"}))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])

    waited = await gap_between_first_two(receiver)
    assert waited < 1.0


async def test_gone_abandons_table_delivery_at_once(
    lassod, make_receiver, captured_logs
):
    receiver = await make_receiver(always(410))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])

    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    detail = await wait_for_status(lassod, key, listing["data"][0]["id"], "abandoned")
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 1
    assert detail["reason"] == "receiver answered 410 Gone"
    assert detail["attempts"][0]["status_code"] == 410
    endpoint = await get_endpoint(lassod, table["id"])
    assert endpoint.active
    names = [entry["event"] for entry in captured_logs]
    assert "delivery_abandoned" in names
    assert "subscription_deactivated" not in names


async def test_gone_deactivates_subscription(lassod, make_receiver, captured_logs):
    receiver = await make_receiver(always(410))
    key = await lassod.new_key()
    company = await company_of(lassod)
    await add_subscription_endpoint(lassod, company, "sub_gone", receiver.url)
    [queued] = await emit(lassod, company, "sub_gone")

    detail = await wait_for_status(lassod, key, queued.delivery_id, "abandoned")
    assert detail["subscription_id"] == "sub_gone"
    assert detail["reason"] == "receiver answered 410 Gone"

    async def deactivated() -> bool:
        return not (await get_endpoint(lassod, "sub_gone")).active

    await eventually(deactivated)
    endpoint = await get_endpoint(lassod, "sub_gone")
    assert endpoint.disabled_reason == "receiver answered 410 Gone"
    assert endpoint.disabled_ms is not None
    [warning] = [
        entry for entry in captured_logs if entry["event"] == "subscription_deactivated"
    ]
    assert warning["log_level"] == "warning"
    assert warning["subscription_id"] == "sub_gone"

    [later] = await emit(lassod, company, "sub_gone")
    after = await wait_for_status(lassod, key, later.delivery_id, "abandoned")
    assert after["reason"] == "endpoint is inactive"
    assert len(receiver.received) == 1
    status, body = await lassod.request(
        "POST", f"/api/v1/deliveries/{queued.delivery_id}/redeliver", key
    )
    assert status == 409
    assert "reactivate" in body["message"]


async def test_failing_subscription_deactivated(
    start_lassod, tmp_path, make_receiver, captured_logs
):
    lassod = await start_fast(
        start_lassod, tmp_path, retry_delays_s=(0.3,) * 20, disable_after_failing_s=1.0
    )
    receiver = await make_receiver(always(500))
    key = await lassod.new_key()
    company = await company_of(lassod)
    await add_subscription_endpoint(lassod, company, "sub_failing", receiver.url)
    [queued] = await emit(lassod, company, "sub_failing")

    detail = await wait_for_status(lassod, key, queued.delivery_id, "abandoned")
    assert detail["reason"].startswith(
        "subscription deactivated: every attempt failed since"
    )
    endpoint = await get_endpoint(lassod, "sub_failing")
    assert not endpoint.active
    assert endpoint.disabled_reason.startswith("every attempt failed since ")
    # The first attempt failed at t=0; deactivation follows the first failure at >= 1 s.
    assert 4 <= len(receiver.received) <= 6
    count = len(receiver.received)
    await asyncio.sleep(0.7)
    assert len(receiver.received) == count
    [warning] = [
        entry for entry in captured_logs if entry["event"] == "subscription_deactivated"
    ]
    assert warning["subscription_id"] == "sub_failing"


async def test_success_resets_failure_streak(start_lassod, tmp_path, make_receiver):
    lassod = await start_fast(
        start_lassod, tmp_path, retry_delays_s=(0.3,) * 3, disable_after_failing_s=1.0
    )
    receiver = await make_receiver(fail_times(2))
    key = await lassod.new_key()
    company = await company_of(lassod)
    await add_subscription_endpoint(lassod, company, "sub_flaky", receiver.url)
    [queued] = await emit(lassod, company, "sub_flaky")

    await receiver.wait_for(2)

    async def streak_started() -> bool:
        return (await get_endpoint(lassod, "sub_flaky")).failing_since_ms is not None

    await eventually(streak_started)
    await wait_for_status(lassod, key, queued.delivery_id, "succeeded")
    endpoint = await get_endpoint(lassod, "sub_flaky")
    assert endpoint.failing_since_ms is None
    assert endpoint.active
