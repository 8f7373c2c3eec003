"""A database locked by another process: clear 503s, nothing changed, then recovery."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from lassod.web import errors
from tests.delivery_helpers import create_table


def hold_write_lock(path: str, locked: threading.Event, release: threading.Event) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(20)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def set_busy_timeout(connection: sqlite3.Connection, milliseconds: int) -> None:
    connection.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")


async def test_locked_database_answers_503_and_recovers(lassod):
    key = await lassod.new_key()
    # lassod waits 5 s for a lock; a shorter wait keeps the test short.
    await lassod.daemon.database.read(set_busy_timeout, 300)
    path = lassod.daemon.settings.database.path
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, locked, release))
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5)
        body = {"name": "Locked", "schema_id": "sch_1", "source_text": "text"}
        response = await lassod.session.post(
            lassod.base_url + "/api/v1/tables",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        )
        error = await response.json()
        retry_after = response.headers.get("Retry-After")
    finally:
        release.set()
        await asyncio.to_thread(holder.join)

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

    assert errors._database_unavailable(locked.value)
    assert not errors._database_unavailable(broken.value)
    assert not errors._database_unavailable(ValueError("not a database error"))
