"""One company's hanging receivers leave room for other companies' deliveries."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from tests.conftest import make_settings


async def complete_table(lassod, key: str, url: str) -> None:
    body = {"name": "T", "schema_id": "s", "source_text": "x", "webhook_url": url}
    status, table = await lassod.request("POST", "/api/v1/tables", key, json=body)
    assert status == 201, table
    status, _ = await lassod.request(
        "POST", f"/api/v1/tables/{table['id']}/status", key, json={"status": "completed"}
    )
    assert status == 200


async def test_hanging_company_leaves_room(start_lassod, tmp_path, make_receiver):
    lassod = await start_lassod(
        make_settings(
            tmp_path,
            delivery={
                "max_concurrency": 8,
                "max_concurrency_per_host": 4,
                "max_unproven_per_company": 4,
                "timeout_s": 5.0,
            },
        )
    )
    release = asyncio.Event()

    async def hang(request: web.Request, number: int) -> web.Response:
        await release.wait()
        return web.Response(status=200)

    # Six hosts (ports) that hang could take every slot at 4 each.
    hanging = [await make_receiver(hang) for _ in range(6)]
    healthy = await make_receiver()
    noisy_key = await lassod.new_key("noisy")
    quiet_key = await lassod.new_key("quiet")
    try:
        for receiver in hanging:
            for _ in range(3):
                await complete_table(lassod, noisy_key, receiver.url)
        await hanging[0].wait_for(1)
        await asyncio.sleep(0.3)
        in_flight = sum(len(receiver.received) for receiver in hanging)
        assert in_flight == 4

        started = time.monotonic()
        await complete_table(lassod, quiet_key, healthy.url)
        await healthy.wait_for(1, timeout_s=2.0)
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
