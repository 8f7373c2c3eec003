"""Delivery history and redelivery over the API, against real receivers."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import eventually
from tests.delivery_helpers import (
    always,
    company_of,
    complete,
    create_table,
    emit,
    fail_times,
    wait_for_status,
)


async def deliveries_of(lassod, key, query: str = "") -> dict:
    status, body = await lassod.request("GET", "/api/v1/deliveries" + query, key)
    assert status == 200, body
    return body


async def test_show_lists_every_attempt(lassod, make_receiver):
    receiver = await make_receiver(fail_times(1))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])

    [listed] = (await deliveries_of(lassod, key))["data"]
    detail = await wait_for_status(lassod, key, listed["id"], "succeeded")

    assert listed["table_id"] == table["id"]
    assert listed["subscription_id"] is None
    assert detail["url"] == receiver.url
    assert detail["next_attempt_at"] is None
    assert detail["event"]["name"] == "table.completed"
    first, second = detail["attempts"]
    assert [first["number"], second["number"]] == [1, 2]
    assert first["status_code"] == 500
    assert first["response_excerpt"] == "nope"
    assert first["outcome"] == "failed"
    assert second["status_code"] == 200
    assert second["outcome"] == "succeeded"
    sent = receiver.received
    assert detail["event"]["id"] == sent[0].headers["X-Lasso-Event-Id"]
    assert detail["event"]["body"] == json.loads(sent[0].body)
    assert first["attempt_id"] == sent[0].headers["X-Lasso-Delivery-Id"]
    assert second["attempt_id"] == sent[1].headers["X-Lasso-Delivery-Id"]
    assert isinstance(first["duration_ms"], int)


async def test_pending_retry_shows_next_attempt(start_lassod, tmp_path, make_receiver):
    from tests.conftest import make_settings

    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"retry_delays_s": (60.0,)})
    )
    receiver = await make_receiver(always(500))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])
    await receiver.wait_for(1)

    async def scheduled() -> bool:
        [item] = (await deliveries_of(lassod, key))["data"]
        return item["next_attempt_at"] is not None

    await eventually(scheduled)
    [item] = (await deliveries_of(lassod, key, "?status=pending"))["data"]
    assert item["attempt_count"] == 1
    assert item["last_attempt_at"] is not None


async def test_filters_and_newest_first(lassod, make_receiver):
    good = await make_receiver()
    bad = await make_receiver(always(400))
    key = await lassod.new_key()
    first = await create_table(lassod, key, webhook_url=good.url)
    second = await create_table(lassod, key, webhook_url=bad.url)
    await complete(lassod, key, first["id"])
    await asyncio.sleep(0.01)
    await lassod.request(
        "POST", f"/api/v1/tables/{second['id']}/status", key, json={"status": "failed"}
    )

    async def settled() -> bool:
        items = (await deliveries_of(lassod, key))["data"]
        return sorted(item["status"] for item in items) == ["abandoned", "succeeded"]

    await eventually(settled)
    listing = await deliveries_of(lassod, key)
    assert [item["table_id"] for item in listing["data"]] == [second["id"], first["id"]]
    assert listing["pagination"]["total"] == 2

    by_table = await deliveries_of(lassod, key, f"?table_id={first['id']}")
    assert [item["table_id"] for item in by_table["data"]] == [first["id"]]
    by_status = await deliveries_of(lassod, key, "?status=abandoned")
    assert [item["table_id"] for item in by_status["data"]] == [second["id"]]
    assert by_status["data"][0]["reason"] == "all attempts failed"
    by_event = await deliveries_of(lassod, key, "?event=table.completed")
    assert [item["table_id"] for item in by_event["data"]] == [first["id"]]
    paged = await deliveries_of(lassod, key, "?limit=1&page=2")
    assert [item["table_id"] for item in paged["data"]] == [first["id"]]

    created = listing["data"][0]["created_at"]
    since = await deliveries_of(lassod, key, f"?since={created}")
    assert [item["table_id"] for item in since["data"]] == [second["id"]]
    until = await deliveries_of(lassod, key, f"?until={created}")
    assert [item["table_id"] for item in until["data"]] == [first["id"]]
    future = await deliveries_of(lassod, key, "?since=2999-01-01T00:00:00Z")
    assert future["data"] == []


async def test_bad_filters_name_the_field(lassod):
    key = await lassod.new_key()
    cases = {
        "?status=lost": "status",
        "?since=yesterday": "since",
        "?until=2026-01-01T00:00:00": "until",
        "?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z": "until",
        "?table_id=tbl_1&subscription_id=sub_1": "subscription_id",
        "?table_id=0b6f4c1e-5d0e-4a43-9d5e-8c1f6f0c2a11": "table_id",
        "?subscription_id=tbl_0123456789abcdef01234567": "subscription_id",
        "?colour=red": "colour",
        "?limit=0": "limit",
        "?event=": "event",
        "?status=pending&status=failed": "status",
        "?limit=5&page=1&limit=10": "limit",
    }
    for query, field in cases.items():
        status, body = await lassod.request("GET", "/api/v1/deliveries" + query, key)
        assert status == 422, query
        assert body["field"] == field, query
        assert body["error_type"] == "validation_error"
    _, body = await lassod.request("GET", "/api/v1/deliveries?status=a&status=b", key)
    assert body["message"] == "status: is given 2 times; give it at most once"


async def test_repeated_parameter_checked_after_auth(lassod):
    key = await lassod.new_key()

    status, _ = await lassod.request("GET", "/api/v1/deliveries?status=a&status=b")
    assert status == 401
    status, _ = await lassod.request(
        "GET", "/api/v1/tables?limit=1&limit=2", "lasso_wrong"
    )
    assert status == 401
    for path, field in (
        ("/api/v1/tables?limit=1&limit=2", "limit"),
        ("/api/v1/catalog/changes?page_size=1&page_size=2", "page_size"),
        ("/api/v1/attributes?page=1&page=1", "page"),
    ):
        status, body = await lassod.request("GET", path, key)
        assert status == 422, path
        assert body["field"] == field, path
    # Paths that read no query parameters ignore repeats as they ignore others.
    status, _ = await lassod.request("GET", "/healthz?x=1&x=2")
    assert status == 200
    status, _ = await lassod.request("GET", "/no/such/route?x=1&x=2", key)
    assert status == 404


async def test_other_company_sees_nothing(lassod, make_receiver):
    receiver = await make_receiver()
    acme = await lassod.new_key("acme")
    globex = await lassod.new_key("globex")
    table = await create_table(lassod, acme, webhook_url=receiver.url)
    await complete(lassod, acme, table["id"])
    [item] = (await deliveries_of(lassod, acme))["data"]

    assert (await deliveries_of(lassod, globex))["data"] == []
    status, body = await lassod.request(
        "GET", f"/api/v1/deliveries/{item['id']}", globex
    )
    assert status == 404
    assert body["error_type"] == "not_found"
    status, _ = await lassod.request(
        "POST", f"/api/v1/deliveries/{item['id']}/redeliver", globex
    )
    assert status == 404
    status, _ = await lassod.request(
        "POST",
        f"/api/v1/tables/{table['id']}/redeliver",
        globex,
        json={"since": "2020-01-01T00:00:00Z"},
    )
    assert status == 404
    await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1


async def test_redeliver_sends_same_event_again(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    table = await create_table(
        lassod, key, webhook_url=receiver.url, webhook_secret="s3cret"
    )
    await complete(lassod, key, table["id"])
    [original] = (await deliveries_of(lassod, key))["data"]
    await wait_for_status(lassod, key, original["id"], "succeeded")

    status, copy = await lassod.request(
        "POST", f"/api/v1/deliveries/{original['id']}/redeliver", key
    )
    assert status == 201, copy
    assert copy["id"] != original["id"]
    assert copy["redelivery_of"] == original["id"]
    assert copy["status"] == "pending"
    await wait_for_status(lassod, key, copy["id"], "succeeded")

    first, second = receiver.received
    assert second.body == first.body
    assert second.headers["X-Lasso-Event-Id"] == first.headers["X-Lasso-Event-Id"]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.headers["X-Lasso-Delivery-Id"] != first.headers["X-Lasso-Delivery-Id"]
    assert (await deliveries_of(lassod, key))["pagination"]["total"] == 2


async def test_redeliver_abandoned_gets_fresh_schedule(lassod, make_receiver):
    receiver = await make_receiver(fail_times(5))
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])
    [original] = (await deliveries_of(lassod, key))["data"]
    await wait_for_status(lassod, key, original["id"], "abandoned")
    assert len(receiver.received) == 4

    status, copy = await lassod.request(
        "POST", f"/api/v1/deliveries/{original['id']}/redeliver", key
    )
    assert status == 201
    detail = await wait_for_status(lassod, key, copy["id"], "succeeded")
    assert [attempt["number"] for attempt in detail["attempts"]] == [1, 2]
    assert len(receiver.received) == 6


async def test_redeliver_unknown_is_404(lassod):
    key = await lassod.new_key()
    status, body = await lassod.request(
        "POST", "/api/v1/deliveries/dlv_nope/redeliver", key
    )
    assert status == 404
    assert "dlv_nope" in body["message"]


async def test_table_redeliver_queues_each_abandoned_event_once(lassod, make_receiver):
    state = {"healthy": False}

    async def behaviour(request, number):
        from aiohttp import web

        return web.Response(status=200 if state["healthy"] else 500)

    receiver = await make_receiver(behaviour)
    other_receiver = await make_receiver(always(500))
    key = await lassod.new_key()
    company = await company_of(lassod)
    table = await create_table(lassod, key, webhook_url=receiver.url)
    other = await create_table(lassod, key, webhook_url=other_receiver.url)
    early = await emit(lassod, company, table["id"])
    await wait_for_status(lassod, key, early[0].delivery_id, "abandoned")
    await asyncio.sleep(0.01)
    status, detail = await lassod.request(
        "GET", f"/api/v1/deliveries/{early[0].delivery_id}", key
    )
    window_start = detail["updated_at"]
    queued = [await emit(lassod, company, table["id"]) for _ in range(3)]
    queued.append(await emit(lassod, company, other["id"]))
    for [item] in queued:
        await wait_for_status(lassod, key, item.delivery_id, "abandoned")

    state["healthy"] = True
    before = len(receiver.received)
    path = f"/api/v1/tables/{table['id']}/redeliver"
    status, body = await lassod.request("POST", path, key, json={"since": window_start})
    assert status == 202, body
    assert body["queued"] == 3
    for delivery_id in body["delivery_ids"]:
        await wait_for_status(lassod, key, delivery_id, "succeeded")
    assert len(receiver.received) == before + 3
    event_ids = {
        item.headers["X-Lasso-Event-Id"] for item in receiver.received[before:]
    }
    assert len(event_ids) == 3

    status, again = await lassod.request(
        "POST", path, key, json={"since": window_start}
    )
    assert status == 202
    assert again["queued"] == 0
    status, everything = await lassod.request(
        "POST", path, key, json={"since": "2020-01-01T00:00:00Z", "until": window_start}
    )
    assert everything["queued"] == 1


async def test_table_redeliver_checks_body(lassod, make_receiver):
    key = await lassod.new_key()
    with_hook = await create_table(lassod, key, webhook_url=(await make_receiver()).url)
    without_hook = await create_table(lassod, key)
    path = f"/api/v1/tables/{with_hook['id']}/redeliver"
    cases = [
        ({}, "since"),
        ({"since": "last week"}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"since": "2026-01-01T00:00:00Z", "extra": 1}, "extra"),
    ]
    for body, field in cases:
        status, error = await lassod.request("POST", path, key, json=body)
        assert status == 422, body
        assert error["field"] == field
    status, error = await lassod.request(
        "POST",
        f"/api/v1/tables/{without_hook['id']}/redeliver",
        key,
        json={"since": "2026-01-01T00:00:00Z"},
    )
    assert status == 409
    assert error["message"] == (
        f"table {without_hook['id']!r} has no webhook_url;"
        " set the table's webhook_url first"
    )
