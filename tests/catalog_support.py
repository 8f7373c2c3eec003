"""Helpers for catalog tests: subscriptions, attributes and received events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.conftest import Received

ALL_EVENTS = [
    "product.created",
    "product.updated",
    "product.deleted",
    "attribute.created",
    "attribute.updated",
    "attribute.deleted",
]


async def subscribe(lassod, key, receiver, events=None, **fields) -> dict[str, Any]:
    """Create a subscription to receiver.url and give the receiver its secret."""
    body = {"url": receiver.url, "events": events or ALL_EVENTS, **fields}
    status, subscription = await lassod.request(
        "POST", "/api/v1/catalog/webhooks", key, json=body
    )
    assert status == 201, subscription
    receiver.secret = subscription["secret"]
    return subscription


async def create_attribute(lassod, key, attribute_key, type_="text", **fields):
    body = {"key": attribute_key, "type": type_, **fields}
    status, attribute = await lassod.request(
        "POST", "/api/v1/attributes", key, json=body
    )
    assert status == 201, attribute
    return attribute


async def create_product(lassod, key, **body):
    status, product = await lassod.request("POST", "/api/v1/catalog", key, json=body)
    assert status == 201, product
    return product


def envelopes(items: list[Received]) -> list[dict[str, Any]]:
    return [json.loads(item.body) for item in items]


def event_names(items: list[Received]) -> list[str]:
    return [envelope["event"] for envelope in envelopes(items)]


async def settle(receiver, count: int, quiet_s: float = 0.3) -> list[Received]:
    """Wait for count requests, then a quiet spell to catch any extra ones."""
    await receiver.wait_for(count)
    await asyncio.sleep(quiet_s)
    return receiver.received


async def count_rows(lassod, sql: str, *args: Any) -> int:
    """Run a COUNT query against the daemon's real database file."""

    def count(connection) -> int:
        return connection.execute(sql, args).fetchone()[0]

    return await lassod.daemon.database.read(count)
