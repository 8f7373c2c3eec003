"""Table webhooks end to end: a real lassod delivering to real receivers."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from tests.conftest import eventually, make_settings

SECRET = "whsk-tëst-sécret"


async def create_table(lassod, key, **webhook):
    body = {"name": "Invoices", "schema_id": "sch_1", "source_text": "café ☕ naïve"}
    body.update(webhook)
    status, table = await lassod.request("POST", "/api/v1/tables", key, json=body)
    assert status == 201, table
    return table


async def report(lassod, key, table_id, **body):
    return await lassod.request("POST", f"/api/v1/tables/{table_id}/status", key, json=body)


async def test_completed_table_gets_signed_delivery(lassod, make_receiver):
    receiver = await make_receiver(secret=SECRET)
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url, webhook_secret=SECRET)

    status, _ = await report(lassod, key, table["id"], status="processing", progress=40)
    assert status == 200
    status, updated = await report(lassod, key, table["id"], status="completed", total_rows=12)
    assert status == 200
    assert updated["status"] == "completed"

    [item] = await receiver.wait_for(1)
    envelope = json.loads(item.body)
    assert envelope["event"] == "table.completed"
    assert envelope["data"] == {"table_id": table["id"], "status": "completed", "total_rows": 12}
    assert envelope["timestamp"].endswith("Z")
    assert len(envelope["timestamp"]) == len("2026-01-01T00:00:00.000Z")
    assert receiver.verified(item)


async def test_failed_table_delivery_carries_error(lassod, make_receiver):
    receiver = await make_receiver(secret=SECRET)
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url, webhook_secret=SECRET)

    status, _ = await report(
        lassod, key, table["id"], status="failed", error_message="OCR crashed: ünïcode"
    )
    assert status == 200

    [item] = await receiver.wait_for(1)
    envelope = json.loads(item.body)
    assert envelope["event"] == "table.failed"
    assert envelope["data"]["error_message"] == "OCR crashed: ünïcode"
    assert envelope["data"]["status"] == "failed"
    assert receiver.verified(item)


async def test_delivery_headers(lassod, make_receiver):
    receiver = await make_receiver(secret=SECRET)
    key = await lassod.new_key()
    table = await create_table(
        lassod,
        key,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_auth_header_name="Authorization",
        webhook_auth_header_value="Bearer receiver-token",
    )
    await report(lassod, key, table["id"], status="completed", total_rows=1)

    [item] = await receiver.wait_for(1)
    headers = item.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("lassod/")
    assert headers["X-Lasso-Event"] == "table.completed"
    assert headers["X-Lasso-Event-Id"].startswith("evt_")
    assert headers["X-Lasso-Delivery-Id"]
    assert headers["Authorization"] == "Bearer receiver-token"
    assert headers["X-Lasso-Signature"].startswith("sha256=")


async def test_no_secret_sends_no_signature(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await report(lassod, key, table["id"], status="completed")

    [item] = await receiver.wait_for(1)
    assert "X-Lasso-Signature" not in item.headers
    assert "webhook-signature" not in item.headers


async def test_table_without_webhook_sends_nothing(lassod, make_receiver):
    key = await lassod.new_key()
    table = await create_table(lassod, key)
    status, body = await report(lassod, key, table["id"], status="completed")

    assert status == 200
    assert body["webhook_status"] == "none"


async def fail_times(count: int):
    async def behaviour(request: web.Request, number: int) -> web.Response:
        return web.Response(status=500 if number <= count else 200, text="nope")

    return behaviour


async def test_retries_until_success(lassod, make_receiver):
    receiver = await make_receiver(await fail_times(3), secret=SECRET)
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url, webhook_secret=SECRET)
    await report(lassod, key, table["id"], status="completed")

    items = await receiver.wait_for(4)
    assert len({item.headers["X-Lasso-Delivery-Id"] for item in items}) == 4
    assert len({item.headers["X-Lasso-Event-Id"] for item in items}) == 1
    assert len({item.body for item in items}) == 1
    assert all(receiver.verified(item) for item in items)

    async def succeeded() -> bool:
        _, body = await lassod.request("GET", f"/api/v1/tables/{table['id']}", key)
        return body["webhook_status"] == "succeeded"

    await eventually(succeeded)


async def test_four_failures_abandon(lassod, make_receiver, captured_logs):
    receiver = await make_receiver(await fail_times(100))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await report(lassod, key, table["id"], status="completed")

    async def abandoned() -> bool:
        _, body = await lassod.request("GET", f"/api/v1/tables/{table['id']}", key)
        return body["webhook_status"] == "abandoned"

    await eventually(abandoned)
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 4
    names = [entry["event"] for entry in captured_logs]
    assert names.count("delivery_attempt_failed") == 3
    assert names.count("delivery_abandoned") == 1


async def test_retry_waits_for_configured_delay(start_lassod, tmp_path, make_receiver):
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"retry_delays_s": (0.8,), "timeout_s": 2.0})
    )
    receiver = await make_receiver(await fail_times(1))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await report(lassod, key, table["id"], status="completed")

    await receiver.wait_for(1)
    loop = asyncio.get_running_loop()
    first = loop.time()
    await receiver.wait_for(2)
    waited = loop.time() - first
    assert 0.7 <= waited < 2.0


async def test_hanging_receiver_times_out(start_lassod, tmp_path, make_receiver):
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"timeout_s": 0.5, "retry_delays_s": (0.1,)})
    )

    async def hang_first(request: web.Request, number: int) -> web.Response:
        if number == 1:
            await asyncio.sleep(2)
        return web.Response(status=204)

    receiver = await make_receiver(hang_first)
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await report(lassod, key, table["id"], status="completed")

    loop = asyncio.get_running_loop()
    started = loop.time()
    await receiver.wait_for(2, timeout_s=4)
    assert loop.time() - started < 3.0

    async def succeeded() -> bool:
        _, body = await lassod.request("GET", f"/api/v1/tables/{table['id']}", key)
        return body["webhook_status"] == "succeeded"

    await eventually(succeeded)


async def test_redirect_is_a_failure_not_followed(lassod, make_receiver):
    target = await make_receiver()

    async def redirect(request: web.Request, number: int) -> web.Response:
        raise web.HTTPFound(target.url)

    receiver = await make_receiver(redirect)
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await report(lassod, key, table["id"], status="completed")

    async def abandoned() -> bool:
        _, body = await lassod.request("GET", f"/api/v1/tables/{table['id']}", key)
        return body["webhook_status"] == "abandoned"

    await eventually(abandoned)
    assert len(receiver.received) == 4
    assert target.received == []


async def test_terminal_report_emits_once(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)

    first, _ = await report(lassod, key, table["id"], status="completed")
    again, _ = await report(lassod, key, table["id"], status="completed")
    backwards, error = await report(lassod, key, table["id"], status="processing")
    other, _ = await report(lassod, key, table["id"], status="failed")

    assert first == 200
    assert again == 200
    assert backwards == 409
    assert error["error_type"] == "conflict"
    assert other == 409
    await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1


async def test_company_isolation(lassod, make_receiver):
    receiver = await make_receiver()
    acme = await lassod.new_key("acme")
    globex = await lassod.new_key("globex")
    table = await create_table(lassod, acme, webhook_url=receiver.url)

    status, error = await lassod.request("GET", f"/api/v1/tables/{table['id']}", globex)
    assert status == 404
    assert error["error_type"] == "not_found"
    status, _ = await report(lassod, globex, table["id"], status="completed")
    assert status == 404
    status, listing = await lassod.request("GET", "/api/v1/tables", globex)
    assert listing["data"] == []
    assert listing["pagination"]["total"] == 0
    await asyncio.sleep(0.2)
    assert receiver.received == []
