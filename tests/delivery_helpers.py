"""Helpers for delivery tests: tables, events on any endpoint, and waiting."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from lassod.clock import now_ms, now_us
from lassod.store import endpoints as endpoint_queries
from lassod.store import history
from lassod.store.deliveries import emit_event
from lassod.store.endpoints import EndpointSettings
from tests.conftest import eventually


async def create_table(lassod, key, **webhook) -> dict[str, Any]:
    body = {"name": "Invoices", "schema_id": "sch_1", "source_text": "text"}
    body.update(webhook)
    status, table = await lassod.request("POST", "/api/v1/tables", key, json=body)
    assert status == 201, table
    return table


async def complete(lassod, key, table_id: str) -> None:
    status, body = await lassod.request(
        "POST", f"/api/v1/tables/{table_id}/status", key, json={"status": "completed"}
    )
    assert status == 200, body


async def company_of(lassod, name: str = "acme") -> str:
    company_id = await lassod.daemon.database.read(history.company_id_by_name, name)
    assert company_id is not None
    return company_id


async def add_subscription_endpoint(
    lassod, company_id: str, endpoint_id: str, url: str, secret: str | None = None
) -> None:
    """Store a catalog subscription's endpoint row, as the catalog API does."""
    settings = EndpointSettings(url, secret, None, None, None, None)
    await lassod.daemon.database.transaction(
        endpoint_queries.save_endpoint,
        endpoint_id,
        company_id,
        "subscription",
        settings,
        now_us(),
    )


async def emit(
    lassod, company_id: str, endpoint_id: str, name: str = "test.event"
) -> list:
    """Emit an event to one endpoint and wake the scheduler, as handlers do."""
    body = orjson.dumps({"event": name, "data": {"n": 1}})
    queued = await lassod.daemon.database.transaction(
        emit_event, company_id, name, body, [endpoint_id], now_ms()
    )
    lassod.daemon.scheduler.notify(queued)
    return queued


async def get_endpoint(lassod, endpoint_id: str):
    return await lassod.daemon.database.read(endpoint_queries.get_endpoint, endpoint_id)


async def wait_for_status(
    lassod, key, delivery_id: str, status: str, timeout_s: float = 10.0
):
    found: dict[str, Any] = {}

    async def reached() -> bool:
        code, body = await lassod.request(
            "GET", f"/api/v1/deliveries/{delivery_id}", key
        )
        assert code == 200, body
        found.update(body)
        return body["status"] == status

    await eventually(reached, timeout_s)
    return found


def always(status: int, headers: dict[str, str] | None = None, text: str = "nope"):
    async def behaviour(request: web.Request, number: int) -> web.Response:
        return web.Response(status=status, text=text, headers=headers)

    return behaviour


def fail_times(count: int, status: int = 500, headers: dict[str, str] | None = None):
    async def behaviour(request: web.Request, number: int) -> web.Response:
        if number <= count:
            return web.Response(status=status, text="nope", headers=headers)
        return web.Response(status=200, text="ok")

    return behaviour
