"""PATCH /api/v1/tables/{id}: webhook settings changed while deliveries are pending."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from aiohttp import web

from tests.conftest import eventually, make_settings
from tests.delivery_helpers import always, complete, create_table, wait_for_status


async def patch(lassod, key, table_id, **body):
    return await lassod.request("PATCH", f"/api/v1/tables/{table_id}", key, json=body)


async def only_delivery(lassod, key) -> dict:
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    [item] = listing["data"]
    return item


async def test_adds_webhook_to_table_without_one(lassod, make_receiver):
    receiver = await make_receiver(secret="added")
    key = await lassod.new_key()
    table = await create_table(lassod, key)
    assert table["webhook_url"] is None

    status, updated = await patch(
        lassod, key, table["id"], webhook_url=receiver.url, webhook_secret="added"
    )
    assert status == 200, updated
    assert updated["webhook_url"] == receiver.url
    assert updated["has_webhook_secret"] is True
    assert updated["webhook_status"] == "none"
    await complete(lassod, key, table["id"])
    [item] = await receiver.wait_for(1)
    assert receiver.verified(item)


async def test_pending_retry_goes_to_new_url(start_lassod, tmp_path, make_receiver):
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"retry_delays_s": (1.0,)})
    )
    old = await make_receiver(always(500))
    new = await make_receiver(secret="new-secret")
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=old.url)
    await complete(lassod, key, table["id"])
    await old.wait_for(1)

    status, _ = await patch(
        lassod,
        key,
        table["id"],
        webhook_url=new.url,
        webhook_secret="new-secret",
        webhook_auth_header_name="Authorization",
        webhook_auth_header_value="Bearer new-token",
    )
    assert status == 200
    [item] = await new.wait_for(1)
    assert new.verified(item)
    assert item.headers["Authorization"] == "Bearer new-token"
    assert len(old.received) == 1
    detail = await wait_for_status(
        lassod, key, (await only_delivery(lassod, key))["id"], "succeeded"
    )
    assert detail["url"] == new.url
    assert [attempt["number"] for attempt in detail["attempts"]] == [1, 2]


async def test_removed_webhook_keeps_success_in_flight(lassod, make_receiver):
    release = asyncio.Event()

    async def answer_when_released(request, number):
        await release.wait()
        return web.Response(status=200, text="ok")

    receiver = await make_receiver(answer_when_released)
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])
    await receiver.wait_for(1)

    status, _ = await patch(lassod, key, table["id"], webhook_url=None)
    assert status == 200
    delivery_id = (await only_delivery(lassod, key))["id"]
    await wait_for_status(lassod, key, delivery_id, "cancelled")
    release.set()

    # The receiver accepted the attempt that was in flight, so the
    # delivery ends succeeded, not cancelled.
    detail = await wait_for_status(lassod, key, delivery_id, "succeeded")
    assert detail["reason"] is None
    assert [attempt["outcome"] for attempt in detail["attempts"]] == ["succeeded"]


async def test_removing_webhook_cancels_pending(start_lassod, tmp_path, make_receiver):
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"retry_delays_s": (0.5,)})
    )
    receiver = await make_receiver(always(500))
    key = await lassod.new_key()
    table = await create_table(
        lassod, key, webhook_url=receiver.url, webhook_secret="x"
    )
    await complete(lassod, key, table["id"])
    await receiver.wait_for(1)

    status, updated = await patch(lassod, key, table["id"], webhook_url=None)
    assert status == 200, updated
    assert updated["webhook_url"] is None
    assert updated["has_webhook_secret"] is False
    assert updated["webhook_status"] == "none"
    assert updated["webhook_last_attempt_at"] is not None
    detail = await wait_for_status(
        lassod, key, (await only_delivery(lassod, key))["id"], "cancelled"
    )
    assert detail["reason"] == "webhook removed"
    assert detail["table_id"] == table["id"]
    await asyncio.sleep(0.8)
    assert len(receiver.received) == 1
    status, error = await lassod.request(
        "POST", f"/api/v1/deliveries/{detail['id']}/redeliver", key
    )
    assert status == 409
    assert error["message"] == (
        f"delivery {detail['id']!r} goes to a table whose webhook_url was removed;"
        " set the table's webhook_url first"
    )


async def test_removes_auth_header_and_secret(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    table = await create_table(
        lassod,
        key,
        webhook_url=receiver.url,
        webhook_secret="x",
        webhook_auth_header_name="X-Token",
        webhook_auth_header_value="abc",
    )
    status, updated = await patch(
        lassod,
        key,
        table["id"],
        webhook_secret=None,
        webhook_auth_header_name=None,
        webhook_auth_header_value=None,
    )
    assert status == 200, updated
    assert updated["webhook_auth_header_name"] is None
    assert updated["has_webhook_secret"] is False
    assert updated["webhook_url"] == receiver.url
    await complete(lassod, key, table["id"])
    [item] = await receiver.wait_for(1)
    assert "X-Token" not in item.headers
    assert "X-Lasso-Signature" not in item.headers


async def test_invalid_patches_name_the_field(lassod):
    key = await lassod.new_key()
    table = await create_table(lassod, key)
    cases = [
        ({}, "body"),
        ({"name": "other"}, "name"),
        ({"webhook_url": "ftp://example.com"}, "webhook_url"),
        ({"webhook_url": 5}, "webhook_url"),
        ({"webhook_secret": "x"}, "webhook_url"),
        ({"webhook_auth_header_name": "X-Token"}, "webhook_auth_header_value"),
        (
            {
                "webhook_auth_header_name": "X-Lasso-Event",
                "webhook_auth_header_value": "v",
            },
            "webhook_auth_header_name",
        ),
    ]
    for body, field in cases:
        status, error = await patch(lassod, key, table["id"], **body)
        assert status == 422, body
        assert error["field"] == field, body
    status, error = await lassod.request(
        "PATCH",
        f"/api/v1/tables/{table['id']}",
        key,
        data=b"{",
        headers={"Content-Type": "application/json"},
    )
    assert status == 400


async def test_other_company_cannot_patch(lassod, make_receiver):
    acme = await lassod.new_key("acme")
    globex = await lassod.new_key("globex")
    table = await create_table(lassod, acme)
    status, error = await patch(
        lassod, globex, table["id"], webhook_url="http://127.0.0.1:9/x"
    )
    assert status == 404
    assert error["error_type"] == "not_found"
    _, unchanged = await lassod.request("GET", f"/api/v1/tables/{table['id']}", acme)
    assert unchanged["webhook_url"] is None


async def test_table_shows_webhook_state(start_lassod, tmp_path, make_receiver):
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"retry_delays_s": (0.5,)})
    )
    receiver = await make_receiver(always(500))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    assert table["webhook_status"] == "none"
    assert table["webhook_last_attempt_at"] is None
    await complete(lassod, key, table["id"])
    await receiver.wait_for(1)

    async def state() -> dict:
        _, body = await lassod.request("GET", f"/api/v1/tables/{table['id']}", key)
        return body

    async def attempted() -> bool:
        return (await state())["webhook_last_attempt_at"] is not None

    await eventually(attempted)
    pending = await state()
    assert pending["webhook_status"] == "pending"
    attempted_at = datetime.fromisoformat(pending["webhook_last_attempt_at"])
    assert abs((datetime.now(timezone.utc) - attempted_at).total_seconds()) < 5

    async def abandoned() -> bool:
        return (await state())["webhook_status"] == "abandoned"

    await eventually(abandoned)
    later = await state()
    assert later["webhook_last_attempt_at"] > pending["webhook_last_attempt_at"]


async def test_moved_retries_keep_per_host_limit(start_lassod, tmp_path, make_receiver):
    """Retries queued for four hosts, then moved to one, go there one at a time."""
    active = {"now": 0, "max": 0}

    async def slow(request: web.Request, number: int) -> web.Response:
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        try:
            await asyncio.sleep(0.5)
        finally:
            active["now"] -= 1
        return web.Response(status=204)

    # max_concurrency 4 gives a per-host limit of 1.
    delivery = {"max_concurrency": 4, "retry_delays_s": (1.0,)}
    lassod = await start_lassod(make_settings(tmp_path, delivery=delivery))
    old = [await make_receiver(always(500)) for _ in range(4)]
    new = await make_receiver(slow)
    key = await lassod.new_key()
    tables = []
    for receiver in old:
        table = await create_table(lassod, key, webhook_url=receiver.url)
        await complete(lassod, key, table["id"])
        tables.append(table)
    for receiver in old:
        await receiver.wait_for(1)

    for table in tables:
        status, body = await patch(lassod, key, table["id"], webhook_url=new.url)
        assert status == 200, body
    await new.wait_for(4, timeout_s=10)

    assert active["max"] == 1
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    assert len(listing["data"]) == 4
    for item in listing["data"]:
        await wait_for_status(lassod, key, item["id"], "succeeded")
    # Lag counts each attempt sent once, not its starts taken back.
    async with lassod.session.get(lassod.base_url + "/metrics") as response:
        metrics = await response.text()
    assert "lassod_scheduler_lag_seconds_count 8.0" in metrics


async def test_parked_delivery_leaves_with_its_endpoint(
    start_lassod, tmp_path, make_receiver
):
    """A delivery parked behind a hanging host goes out once its table moves."""
    release = asyncio.Event()

    async def hang(request: web.Request, number: int) -> web.Response:
        await release.wait()
        return web.Response(status=204)

    hanging = await make_receiver(hang)
    new = await make_receiver()
    # max_concurrency 4 gives a per-host limit of 1, so the second one parks.
    delivery = {"max_concurrency": 4, "timeout_s": 30.0}
    lassod = await start_lassod(make_settings(tmp_path, delivery=delivery))
    key = await lassod.new_key()
    try:
        first = await create_table(lassod, key, webhook_url=hanging.url)
        await complete(lassod, key, first["id"])
        await hanging.wait_for(1)
        second = await create_table(lassod, key, webhook_url=hanging.url)
        await complete(lassod, key, second["id"])
        await asyncio.sleep(0.3)
        assert len(hanging.received) == 1

        status, body = await patch(lassod, key, second["id"], webhook_url=new.url)
        assert status == 200, body
        await new.wait_for(1, timeout_s=3)
    finally:
        release.set()
    assert len(hanging.received) == 1
