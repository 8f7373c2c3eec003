"""Receivers that verify with the standardwebhooks package from PyPI."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import datetime, timedelta

import aiohttp
import pytest
import standardwebhooks.webhooks
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import make_settings
from tests.delivery_helpers import complete, create_table, wait_for_status

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NEW_WHSEC = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
PLAIN = "plain-sécret"
# The package rejects timestamps more than five minutes old or ahead.
TOLERANCE = timedelta(minutes=5)


def verifying(webhook: Webhook):
    """Return 204 for a delivery that verifies and 401 for one that does not."""

    async def behaviour(request: web.Request, number: int) -> web.Response:
        body = await request.read()
        try:
            webhook.verify(body, dict(request.headers))
        except WebhookVerificationError as error:
            return web.Response(status=401, text=str(error))
        return web.Response(status=204)

    return behaviour


def lasso_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def deliver_tables(lassod, key, url, secret, count):
    ids = []
    for _ in range(count):
        table = await create_table(lassod, key, webhook_url=url, webhook_secret=secret)
        await complete(lassod, key, table["id"])
        ids.append(table["id"])
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    return [item["id"] for item in listing["data"]]


@pytest.mark.parametrize(
    ("secret", "webhook"),
    [(WHSEC, Webhook(WHSEC)), (PLAIN, Webhook(PLAIN.encode()))],
    ids=["whsec", "plain"],
)
async def test_receiver_accepts_every_delivery(lassod, make_receiver, secret, webhook):
    receiver = await make_receiver(verifying(webhook))
    key = await lassod.new_key()
    delivery_ids = await deliver_tables(lassod, key, receiver.url, secret, 3)
    for delivery_id in delivery_ids:
        detail = await wait_for_status(lassod, key, delivery_id, "succeeded")
        assert [attempt["status_code"] for attempt in detail["attempts"]] == [204]
    assert len(receiver.received) == 3
    for item in receiver.received:
        assert item.headers["webhook-id"] == item.headers["X-Lasso-Event-Id"]
        assert item.headers["X-Lasso-Signature"] == lasso_signature(secret, item.body)


async def test_whsec_secret_is_used_decoded(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    [delivery_id] = await deliver_tables(lassod, key, receiver.url, WHSEC, 1)
    await wait_for_status(lassod, key, delivery_id, "succeeded")
    [item] = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC.encode()).verify(item.body, item.headers)
    Webhook(WHSEC).verify(item.body, item.headers)


async def test_replay_older_than_tolerance_rejected(lassod, make_receiver, monkeypatch):
    receiver = await make_receiver(verifying(Webhook(WHSEC)))
    key = await lassod.new_key()
    [delivery_id] = await deliver_tables(lassod, key, receiver.url, WHSEC, 1)
    await wait_for_status(lassod, key, delivery_id, "succeeded")
    [original] = receiver.received

    class Later(datetime):
        """The receiver's clock, moved past the package's tolerance."""

        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + TOLERANCE + timedelta(seconds=2)

    # NOTE: standardwebhooks 1.1.0 has a fixed five-minute tolerance and reads
    # the wall clock itself, so the test moves that clock instead of waiting.
    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", Later)
    replay_headers = {
        name: value
        for name, value in original.headers.items()
        if name.lower() not in ("host", "content-length")
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            receiver.url, data=original.body, headers=replay_headers
        ) as response,
    ):
        assert response.status == 401
        assert "too old" in await response.text()


async def test_both_secrets_verify_during_rotation(
    start_lassod, tmp_path, make_receiver
):
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"secret_rotation_grace_s": 1.5})
    )
    receiver = await make_receiver()
    key = await lassod.new_key()
    table = await create_table(
        lassod, key, webhook_url=receiver.url, webhook_secret=WHSEC
    )
    status, _ = await lassod.request(
        "PATCH",
        f"/api/v1/tables/{table['id']}",
        key,
        json={"webhook_secret": NEW_WHSEC},
    )
    assert status == 200
    await complete(lassod, key, table["id"])
    [item] = await receiver.wait_for(1)

    assert len(item.headers["webhook-signature"].split(" ")) == 2
    Webhook(WHSEC).verify(item.body, item.headers)
    Webhook(NEW_WHSEC).verify(item.body, item.headers)
    assert item.headers["X-Lasso-Signature"] == lasso_signature(NEW_WHSEC, item.body)
    assert item.headers["X-Lasso-Signature-Previous"] == lasso_signature(
        WHSEC, item.body
    )

    # After the grace period only the new secret signs.
    await asyncio.sleep(1.6)
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    status, _ = await lassod.request(
        "POST", f"/api/v1/deliveries/{listing['data'][0]['id']}/redeliver", key
    )
    assert status == 201
    _, later = await receiver.wait_for(2)
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    assert "X-Lasso-Signature-Previous" not in later.headers
    Webhook(NEW_WHSEC).verify(later.body, later.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(later.body, later.headers)
