"""A database locked by another process: clear 503s, nothing changed, then recovery."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from typing import AsyncIterator

import orjson
import pytest

from lassod import recorder
from lassod.clock import now_ms
from lassod.store.database import is_unavailable
from lassod.store.deliveries import emit_event
from lassod.web import health
from tests.delivery_helpers import company_of, create_table


def hold_write_lock(path: str, locked: threading.Event, release: threading.Event) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(20)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


@contextlib.asynccontextmanager
async def locked_database(path: str) -> AsyncIterator[None]:
    """Hold the write lock from a second connection while the block runs."""
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, locked, release))
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5)
        yield
    finally:
        release.set()
        await asyncio.to_thread(holder.join)


def set_busy_timeout(connection: sqlite3.Connection, milliseconds: int) -> None:
    connection.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")


async def test_locked_database_answers_503_and_recovers(lassod):
    key = await lassod.new_key()
    # lassod waits 5 s for a lock; a shorter wait keeps the test short.
    await lassod.daemon.database.read(set_busy_timeout, 300)
    async with locked_database(lassod.daemon.settings.database.path):
        body = {"name": "Locked", "schema_id": "sch_1", "source_text": "text"}
        response = await lassod.session.post(
            lassod.base_url + "/api/v1/tables",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        )
        error = await response.json()
        retry_after = response.headers.get("Retry-After")

    assert response.status == 503
    assert error["error_type"] == "unavailable"
    assert "nothing was changed" in error["message"]
    assert retry_after == "5"
    status, listed = await lassod.request("GET", "/api/v1/tables", key)
    assert status == 200
    assert listed["pagination"]["total"] == 0
    # The same request succeeds once the lock is gone.
    table = await create_table(lassod, key)
    assert table["status"] == "queued"


async def start_waiting_post(lassod, key: str) -> asyncio.Future:
    """Start a POST whose group then waits out the busy timeout on the writer."""
    body = {"name": "Waiting", "schema_id": "sch_1", "source_text": "text"}
    waiting = asyncio.ensure_future(
        lassod.request("POST", "/api/v1/tables", key, json=body)
    )
    await asyncio.sleep(0.2)
    return waiting


async def test_uncached_key_gets_503_in_one_busy_timeout(lassod):
    first = await lassod.new_key()
    # Never used, so its lookup misses the key cache.
    second = await lassod.new_key("globex")
    # The pruner's first pass may still run, and its vacuum would wait for
    # the lock too, ahead of the requests.
    await lassod.daemon._pruner.stop()
    await lassod.daemon.database.read(set_busy_timeout, 1_000)
    async with locked_database(lassod.daemon.settings.database.path):
        waiting = await start_waiting_post(lassod, first)
        started = asyncio.get_running_loop().time()
        body = {"name": "Second", "schema_id": "sch_1", "source_text": "text"}
        status, _ = await lassod.request("POST", "/api/v1/tables", second, json=body)
        elapsed_s = asyncio.get_running_loop().time() - started
    first_status, _ = await waiting

    assert status == 503
    assert first_status == 503
    # The key lookup did not wait behind the stuck group, so the write failed
    # with that group after about 0.8 s. Behind it, the lookup would have
    # waited that long and the write a 1 s busy timeout more.
    assert elapsed_s < 1.3


async def test_readyz_names_the_lock(lassod, monkeypatch):
    monkeypatch.setattr(health, "READY_DATABASE_TIMEOUT_S", 0.2)
    key = await lassod.new_key()
    await lassod.daemon.database.read(set_busy_timeout, 2_000)
    async with locked_database(lassod.daemon.settings.database.path):
        waiting = await start_waiting_post(lassod, key)
        status, ready = await lassod.request("GET", "/readyz")
    await waiting

    assert status == 503
    assert "write lock" in ready["reason"]


def test_query_faults_are_not_unavailability(tmp_path):
    """A broken query is a 500 with a traceback, not a retryable 503."""
    path = str(tmp_path / "faults.db")
    first = sqlite3.connect(path, isolation_level=None, timeout=0)
    second = sqlite3.connect(path, isolation_level=None, timeout=0)
    first.execute("CREATE TABLE items (id INTEGER)")
    first.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError) as locked:
            second.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as broken:
            second.execute("SELECT missing FROM items")
    finally:
        first.execute("ROLLBACK")
        first.close()
        second.close()

    assert is_unavailable(locked.value)
    assert not is_unavailable(broken.value)
    assert not is_unavailable(ValueError("not a database error"))


async def test_stop_takes_back_a_start_committed_late(
    lassod, make_receiver, monkeypatch
):
    """A start that commits after stop gave up on it is undone, not sent."""
    monkeypatch.setattr(recorder, "RETRY_PAUSE_S", 0.1)
    receiver = await make_receiver()
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    company = await company_of(lassod)
    await lassod.daemon.database.read(set_busy_timeout, 100)
    body = orjson.dumps({"event": "test.event", "data": {}})
    queued = await lassod.daemon.database.transaction(
        emit_event, company, "test.event", body, [table["id"]], now_ms() + 300
    )
    lassod.daemon.scheduler.notify(queued)
    path = lassod.daemon.settings.database.path
    async with locked_database(path):
        # Due while locked: its start waits for the lock.
        await asyncio.sleep(0.6)
        stopping = asyncio.create_task(lassod.daemon.stop())
        # Past the 2 s grace for starts, within the 2 s for recording.
        await asyncio.sleep(2.5)
    await stopping

    connection = sqlite3.connect(path)
    try:
        attempts = connection.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        delivery = connection.execute(
            "SELECT status, attempt_count, next_due_ms IS NOT NULL FROM deliveries"
        ).fetchone()
    finally:
        connection.close()
    assert receiver.received == []
    assert attempts == 0
    assert delivery == ("pending", 0, 1)
