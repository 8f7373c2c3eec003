"""Catalog webhook subscriptions: secrets, changed settings and cancellation."""

from __future__ import annotations

import pytest

import asyncio
import base64
import hashlib
import hmac
import json

from aiohttp import web

from tests.catalog_support import count_rows, create_attribute, event_names, subscribe
from tests.conftest import eventually, make_settings

SLOW_RETRIES = {"retry_delays_s": (1.0, 1.0, 1.0), "timeout_s": 2.0}


async def always_fail(request: web.Request, number: int) -> web.Response:
    return web.Response(status=503, text="down")


def standard_verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Check the Standard Webhooks signature with a whsec_ secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return f"v1,{digest}" in headers["webhook-signature"].split(" ")


async def test_generated_secret_shown_once(lassod, make_receiver, captured_logs):
    receiver = await make_receiver()
    key = await lassod.new_key()
    created = await subscribe(lassod, key, receiver, description="Shop sync")

    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert created["has_secret"] is True
    assert created["description"] == "Shop sync"
    _, fetched = await lassod.request(
        "GET", f"/api/v1/catalog/webhooks/{created['id']}", key
    )
    assert "secret" not in fetched
    assert fetched == {
        name: value for name, value in created.items() if name != "secret"
    }
    _, listing = await lassod.request("GET", "/api/v1/catalog/webhooks", key)
    assert listing["data"] == [fetched]

    await create_attribute(lassod, key, "color")
    [item] = await receiver.wait_for(1)
    assert receiver.verified(item)
    assert standard_verified(secret, item.headers, item.body)
    assert secret not in json.dumps(captured_logs, default=str)


async def test_given_secret_is_used(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    created = await subscribe(lassod, key, receiver, secret="mÿ-own-secret")
    assert created["secret"] == "mÿ-own-secret"

    await create_attribute(lassod, key, "color")
    [item] = await receiver.wait_for(1)
    assert receiver.verified(item)


async def test_patch_redirects_pending_retry(
    start_lassod, tmp_path, make_receiver, captured_logs
):
    lassod = await start_lassod(make_settings(tmp_path, delivery=SLOW_RETRIES))
    old = await make_receiver(always_fail)
    new = await make_receiver()
    key = await lassod.new_key()
    subscription = await subscribe(lassod, key, old, events=["attribute.created"])
    await create_attribute(lassod, key, "color")
    [first] = await old.wait_for(1)

    status, updated = await lassod.request(
        "PATCH",
        f"/api/v1/catalog/webhooks/{subscription['id']}",
        key,
        json={
            "url": new.url,
            "secret": "rotated-secret",
            "auth_header_name": "Authorization",
            "auth_header_value": "Bearer new-token",
        },
    )
    assert status == 200, updated
    assert updated["url"] == new.url
    assert updated["auth_header_name"] == "Authorization"
    assert "secret" not in updated
    new.secret = "rotated-secret"

    [retry] = await new.wait_for(1, timeout_s=5)
    assert retry.headers["X-Lasso-Event-Id"] == first.headers["X-Lasso-Event-Id"]
    assert retry.body == first.body
    assert retry.headers["Authorization"] == "Bearer new-token"
    assert new.verified(retry)
    assert len(old.received) == 1
    [logged] = [
        e for e in captured_logs if e["event"] == "catalog_subscription_updated"
    ]
    assert logged["fields"] == [
        "auth_header_name",
        "auth_header_value",
        "secret",
        "url",
    ]
    logs_text = json.dumps(captured_logs, default=str)
    assert "rotated-secret" not in logs_text
    assert "new-token" not in logs_text


async def test_delete_cancels_pending(
    start_lassod, tmp_path, make_receiver, captured_logs
):
    lassod = await start_lassod(make_settings(tmp_path, delivery=SLOW_RETRIES))
    receiver = await make_receiver(always_fail)
    key = await lassod.new_key()
    subscription = await subscribe(lassod, key, receiver)
    await create_attribute(lassod, key, "color")
    await receiver.wait_for(1)

    status, _ = await lassod.request(
        "DELETE", f"/api/v1/catalog/webhooks/{subscription['id']}", key
    )
    assert status == 204

    async def cancelled() -> bool:
        count = await count_rows(
            lassod,
            "SELECT COUNT(*) FROM deliveries WHERE endpoint_id = ? AND status = 'cancelled'",
            subscription["id"],
        )
        return count == 1

    await eventually(cancelled)
    [logged] = [
        e for e in captured_logs if e["event"] == "catalog_subscription_deleted"
    ]
    assert logged["subscription_id"] == subscription["id"]
    assert logged["cancelled_deliveries"] == 1
    await asyncio.sleep(1.5)
    assert len(receiver.received) == 1
    status, _ = await lassod.request(
        "GET", f"/api/v1/catalog/webhooks/{subscription['id']}", key
    )
    assert status == 404
    await create_attribute(lassod, key, "size")
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1


async def test_patch_events_changes_fan_out(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    subscription = await subscribe(lassod, key, receiver, events=["product.created"])
    await create_attribute(lassod, key, "color")

    status, updated = await lassod.request(
        "PATCH",
        f"/api/v1/catalog/webhooks/{subscription['id']}",
        key,
        json={
            "events": ["attribute.deleted", "attribute.created", "attribute.created"]
        },
    )
    assert status == 200
    assert updated["events"] == ["attribute.created", "attribute.deleted"]
    await create_attribute(lassod, key, "size")
    items = await receiver.wait_for(1)
    await asyncio.sleep(0.2)
    assert event_names(items) == ["attribute.created"]
    assert json.loads(items[0].body)["data"]["attribute"]["key"] == "size"


async def test_patch_null_clears_settings(lassod):
    key = await lassod.new_key()
    status, created = await lassod.request(
        "POST",
        "/api/v1/catalog/webhooks",
        key,
        json={
            "url": "https://example.com/hook",
            "events": ["product.created"],
            "description": "catalog mirror",
            "auth_header_name": "X-Token",
            "auth_header_value": "t0ken",
        },
    )
    assert status == 201

    status, changed = await lassod.request(
        "PATCH",
        f"/api/v1/catalog/webhooks/{created['id']}",
        key,
        json={
            "description": None,
            "secret": None,
            "auth_header_name": None,
            "auth_header_value": None,
        },
    )

    assert status == 200
    assert changed["description"] is None
    assert changed["has_secret"] is False
    assert changed["auth_header_name"] is None


@pytest.mark.parametrize(
    ("sent", "missing"),
    [
        ({"auth_header_value": None}, "auth_header_name"),
        ({"auth_header_name": None}, "auth_header_value"),
        ({"auth_header_value": "other"}, "auth_header_name"),
    ],
)
async def test_patch_half_auth_header_rejected(lassod, sent, missing):
    key = await lassod.new_key()
    status, created = await lassod.request(
        "POST",
        "/api/v1/catalog/webhooks",
        key,
        json={
            "url": "https://example.com/hook",
            "events": ["product.created"],
            "auth_header_name": "X-Token",
            "auth_header_value": "t0ken",
        },
    )
    assert status == 201

    path = f"/api/v1/catalog/webhooks/{created['id']}"
    status, error = await lassod.request("PATCH", path, key, json=sent)

    assert status == 422
    assert error["field"] == missing
    assert "must be given together" in error["message"]
    _, stored = await lassod.request("GET", path, key)
    assert stored["auth_header_name"] == "X-Token"


async def test_create_null_description_is_absent(lassod):
    key = await lassod.new_key()
    status, created = await lassod.request(
        "POST",
        "/api/v1/catalog/webhooks",
        key,
        json={
            "url": "https://example.com/hook",
            "events": ["product.created"],
            "description": None,
        },
    )

    assert status == 201, created
    assert created["description"] is None
