"""Subscriptions steered through the API: recover, secret rotation, reactivation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from tests.catalog_support import create_attribute, settle, subscribe
from tests.delivery_helpers import always, fail_times, wait_for_status

SINCE = "2000-01-01T00:00:00Z"


async def abandoned_delivery(lassod, key, receiver) -> str:
    """Create an attribute so its one delivery is abandoned; return its id."""
    await create_attribute(lassod, key, "colour")
    await receiver.wait_for(4)
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    delivery_id = listing["data"][0]["id"]
    await wait_for_status(lassod, key, delivery_id, "abandoned")
    return delivery_id


async def test_recover_queues_each_abandoned_once(lassod, make_receiver):
    receiver = await make_receiver(fail_times(4))
    key = await lassod.new_key()
    subscription = await subscribe(lassod, key, receiver, ["attribute.created"])
    original = await abandoned_delivery(lassod, key, receiver)
    path = f"/api/v1/catalog/webhooks/{subscription['id']}/recover"

    status, body = await lassod.request("POST", path, key, json={"since": SINCE})
    again_status, again = await lassod.request("POST", path, key, json={"since": SINCE})

    assert status == 202
    assert body["queued"] == 1
    [new_id] = body["delivery_ids"]
    detail = await wait_for_status(lassod, key, new_id, "succeeded")
    assert detail["redelivery_of"] == original
    items = await settle(receiver, 5)
    assert len(items) == 5
    assert items[4].body == items[0].body
    assert again_status == 202
    assert again["queued"] == 0


async def test_recover_checks_window_and_owner(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key("acme")
    other = await lassod.new_key("globex")
    subscription = await subscribe(lassod, key, receiver, ["attribute.created"])
    path = f"/api/v1/catalog/webhooks/{subscription['id']}/recover"

    missing, _ = await lassod.request("POST", path, key, json={})
    backwards, error = await lassod.request(
        "POST", path, key, json={"since": "2030-01-01T00:00:00Z", "until": SINCE}
    )
    foreign, _ = await lassod.request("POST", path, other, json={"since": SINCE})
    unknown, _ = await lassod.request(
        "POST", "/api/v1/catalog/webhooks/nope/recover", key, json={"since": SINCE}
    )

    assert missing == 422
    assert backwards == 422
    assert error["field"] == "until"
    assert foreign == 404
    assert unknown == 404


async def test_patched_secret_rotates_with_grace(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    subscription = await subscribe(lassod, key, receiver, ["attribute.created"])
    old_secret = subscription["secret"]

    status, _ = await lassod.request(
        "PATCH",
        f"/api/v1/catalog/webhooks/{subscription['id']}",
        key,
        json={"secret": "brand-new-secret"},
    )
    await create_attribute(lassod, key, "size")
    [item] = await receiver.wait_for(1)

    def signature(secret: str) -> str:
        return "sha256=" + hmac.new(secret.encode(), item.body, hashlib.sha256).hexdigest()

    assert status == 200
    assert item.headers["X-Lasso-Signature"] == signature("brand-new-secret")
    assert item.headers["X-Lasso-Signature-Previous"] == signature(old_secret)
    assert len(item.headers["webhook-signature"].split(" ")) == 2


async def test_reactivation_clears_disabled_reason(lassod, make_receiver):
    receiver = await make_receiver(always(410))
    key = await lassod.new_key()
    subscription = await subscribe(lassod, key, receiver, ["attribute.created"])
    await create_attribute(lassod, key, "weight")
    await receiver.wait_for(1)
    path = f"/api/v1/catalog/webhooks/{subscription['id']}"

    async def turned_off() -> dict:
        for _ in range(100):
            _, body = await lassod.request("GET", path, key)
            if not body["active"]:
                return body
            await asyncio.sleep(0.05)
        raise AssertionError("subscription was not turned off after 410")

    disabled = await turned_off()
    status, recover = await lassod.request(
        "POST", path + "/recover", key, json={"since": "2026-01-01T00:00:00Z"}
    )
    assert status == 409
    assert recover["message"] == (
        f"subscription {subscription['id']!r} is deactivated;"
        " reactivate the subscription with PATCH active=true first"
    )
    status, enabled = await lassod.request("PATCH", path, key, json={"active": True})

    assert "410" in disabled["disabled_reason"]
    assert disabled["updated_at"] > disabled["created_at"]
    assert status == 200
    assert enabled["active"] is True
    assert enabled["disabled_reason"] is None


async def test_redeliver_to_deleted_subscription(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    subscription = await subscribe(lassod, key, receiver, ["attribute.created"])
    await create_attribute(lassod, key, "colour")
    await receiver.wait_for(1)
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    delivery_id = listing["data"][0]["id"]
    await wait_for_status(lassod, key, delivery_id, "succeeded")
    deleted, _ = await lassod.request(
        "DELETE", f"/api/v1/catalog/webhooks/{subscription['id']}", key
    )
    assert deleted == 204

    status, error = await lassod.request(
        "POST", f"/api/v1/deliveries/{delivery_id}/redeliver", key
    )

    assert status == 409
    assert error["message"] == (
        f"delivery {delivery_id!r} cannot be redelivered because its subscription"
        " was deleted; a new subscription receives only events created after it"
    )
