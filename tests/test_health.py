"""Liveness and readiness probes across start-up and shutdown."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from lassod.daemon import Daemon
from lassod.scheduler import Scheduler
from lassod.web import health
from tests.conftest import eventually, make_settings
from tests.ops_helpers import release_wedged, wedge_scheduler


async def get(session: aiohttp.ClientSession, port: int, path: str) -> tuple[int, dict]:
    async with session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.json()


async def test_healthz_answers_without_key(lassod):
    status, body = await lassod.request("GET", "/healthz")

    assert status == 200
    assert body == {"status": "alive"}


async def test_readyz_when_running(lassod):
    status, body = await lassod.request("GET", "/readyz")

    assert status == 200
    assert body == {"status": "ready"}


async def test_readyz_flips_during_start(tmp_path, monkeypatch):
    release = asyncio.Event()
    original_start = Scheduler.start

    async def slow_start(self: Scheduler) -> None:
        # Holds the queue rebuild open, as a large queue would.
        await release.wait()
        await original_start(self)

    monkeypatch.setattr(Scheduler, "start", slow_start)
    daemon = Daemon(make_settings(tmp_path))
    starting = asyncio.create_task(daemon.start())
    async with aiohttp.ClientSession() as session:
        try:
            await eventually(lambda: _is_listening(daemon))
            status, body = await get(session, daemon.port, "/readyz")
            assert status == 503
            assert body["status"] == "not_ready"
            assert body["reason"].startswith("starting")
            status, _ = await get(session, daemon.port, "/healthz")
            assert status == 200

            release.set()
            await starting
            status, body = await get(session, daemon.port, "/readyz")
            assert status == 200
        finally:
            release.set()
            await starting
            await daemon.stop()


async def _is_listening(daemon: Daemon) -> bool:
    return daemon.port is not None


async def test_readyz_flips_during_shutdown(start_lassod, tmp_path, make_receiver):
    answered = asyncio.Event()

    async def slow(request: web.Request, number: int) -> web.Response:
        await asyncio.sleep(0.6)
        answered.set()
        return web.Response(status=200)

    lassod = await start_lassod(make_settings(tmp_path))
    receiver = await make_receiver(slow)
    key = await lassod.new_key()
    body = {
        "name": "T",
        "schema_id": "s",
        "source_text": "x",
        "webhook_url": receiver.url,
    }
    _, table = await lassod.request("POST", "/api/v1/tables", key, json=body)
    await lassod.request(
        "POST",
        f"/api/v1/tables/{table['id']}/status",
        key,
        json={"status": "completed"},
    )
    await receiver.wait_for(1)

    stopping = asyncio.create_task(lassod.daemon.stop())
    await asyncio.sleep(0.1)
    status, body = await lassod.request("GET", "/readyz")
    assert status == 503
    assert body == {"status": "not_ready", "reason": "shutting down"}
    assert not answered.is_set()
    status, _ = await lassod.request("GET", "/healthz")
    assert status == 200
    await stopping
    assert answered.is_set()


async def test_readyz_fails_when_loop_wedged(lassod, monkeypatch):
    monkeypatch.setattr(health, "READY_TICK_MAX_AGE_S", 0.3)
    scheduler = lassod.daemon.scheduler
    try:
        await wedge_scheduler(scheduler)
        await asyncio.sleep(0.4)

        status, body = await lassod.request("GET", "/readyz")

        assert status == 503
        assert body["reason"].startswith("scheduler loop has not run for")
    finally:
        await release_wedged(scheduler)


def limit_pages(connection, extra_pages: int) -> None:
    """Cap the database file at its current size plus extra_pages pages."""
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages + extra_pages}")


async def test_readyz_fails_while_disk_full(lassod, monkeypatch):
    database = lassod.daemon.database
    key = await lassod.new_key()
    # SQLite's page cap on lassod's own connection fails writes that need
    # a new page with SQLITE_FULL, as a full disk does.
    await database.read(limit_pages, 0)
    body = {"name": "T", "schema_id": "s", "source_text": "x" * 3000}
    statuses = []
    for _ in range(100):
        status, answer = await lassod.request("POST", "/api/v1/tables", key, json=body)
        statuses.append(status)
        if status == 503:
            break
    assert statuses[-1] == 503, statuses
    assert answer["error_type"] == "unavailable"

    status, ready = await lassod.request("GET", "/readyz")
    assert status == 503
    assert "(database or disk is full)" in ready["reason"]

    # A commit that writes no new page succeeds on a full disk, and must not
    # make lassod ready again.
    await database.transaction(lambda connection: None)
    status, _ = await lassod.request("GET", "/readyz")
    assert status == 503

    await database.read(limit_pages, 100_000)
    monkeypatch.setattr(health, "READY_WRITE_FAILURE_S", 0.0)
    status, ready = await lassod.request("GET", "/readyz")
    assert status == 200, ready
