"""Database.transaction: concurrent transactions share one commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from lassod.store import Database
from lassod.store import database as database_module
from lassod.store.database import StoreError
from lassod.store.keys import ensure_company


def insert_company(connection: sqlite3.Connection, name: str) -> str:
    return ensure_company(connection, name, 1)


def insert_then_fail(connection: sqlite3.Connection, name: str) -> None:
    ensure_company(connection, name, 1)
    raise ValueError(f"failed after inserting {name}")


def company_names(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute("SELECT name FROM companies ORDER BY name").fetchall()
    return [row[0] for row in rows]


async def test_failed_transaction_rolls_back_alone(tmp_path):
    database = await Database.open(str(tmp_path / "group.db"))
    try:
        results = await asyncio.gather(
            database.transaction(insert_company, "first"),
            database.transaction(insert_then_fail, "broken"),
            database.transaction(insert_company, "second"),
            return_exceptions=True,
        )
        names = await database.read(company_names)
    finally:
        await database.close()

    assert isinstance(results[0], str)
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], str)
    assert names == ["first", "second"]


async def test_committed_rows_survive_reopen(tmp_path):
    path = str(tmp_path / "group.db")
    database = await Database.open(path)
    await asyncio.gather(
        *(database.transaction(insert_company, f"company-{n}") for n in range(50))
    )
    await database.close()

    reopened = await Database.open(path)
    try:
        names = await reopened.read(company_names)
    finally:
        await reopened.close()

    assert len(names) == 50


async def test_error_reaches_only_its_caller(tmp_path):
    database = await Database.open(str(tmp_path / "group.db"))
    try:
        with pytest.raises(ValueError, match="broken"):
            await database.transaction(insert_then_fail, "broken")
        assert await database.transaction(insert_company, "after") is not None
    finally:
        await database.close()


async def test_cancelled_caller_leaves_others_committed(tmp_path):
    database = await Database.open(str(tmp_path / "group.db"))
    try:
        first = asyncio.create_task(database.transaction(insert_company, "kept"))
        second = asyncio.create_task(database.transaction(insert_company, "cancelled"))
        await asyncio.sleep(0)
        second.cancel()
        assert await first is not None
        names = await database.read(company_names)
    finally:
        await database.close()

    assert "kept" in names


async def test_read_runs_between_turns_of_busy_commits(tmp_path, monkeypatch):
    """Transactions queued during every commit must not starve a read."""
    monkeypatch.setattr(database_module, "GROUPS_PER_TURN", 2)
    database = await Database.open(str(tmp_path / "group.db"))
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(100)]

    def insert_and_queue_next(connection: sqlite3.Connection, number: int) -> None:
        # Runs on the SQLite thread: queue the next one, as a busy API would.
        time.sleep(0.002)
        ensure_company(connection, f"company-{number}", 1)
        if number + 1 < len(futures):
            following = database_module._Work(
                insert_and_queue_next, (number + 1,), futures[number + 1]
            )
            with database._lock:
                database._queued.append(following)

    try:
        database._queued.append(
            database_module._Work(insert_and_queue_next, (0,), futures[0])
        )
        first = database.submit(insert_company, "first")
        await first
        async with asyncio.timeout(5):
            await database.read(company_names)
        unfinished = sum(not future.done() for future in futures)
        await asyncio.gather(*futures)
    finally:
        await database.close()

    # The read completed while the chain was still committing.
    assert unfinished > 50


async def test_transaction_after_close_fails_clearly(tmp_path):
    database = await Database.open(str(tmp_path / "group.db"))
    await database.close()

    with pytest.raises(StoreError, match="closed"):
        await database.transaction(insert_company, "late")


async def test_old_sqlite_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(database_module, "sqlite_version_info", lambda: (3, 37, 2))

    with pytest.raises(StoreError, match="SQLite 3.38 or newer.*3.37.2"):
        await Database.open(str(tmp_path / "old.db"))



async def test_turn_starts_before_next_loop_pass(tmp_path):
    database = await Database.open(str(tmp_path / "eager.db"))
    ran = threading.Event()

    def mark(connection: sqlite3.Connection) -> None:
        ran.set()

    try:
        future = database.submit(mark)
        # This blocks the event loop, so only a turn queued at once can run.
        ran_while_loop_blocked = ran.wait(timeout=5)
        await future
    finally:
        await database.close()

    assert ran_while_loop_blocked


async def test_close_gap_raises_store_error(tmp_path):
    database = await Database.open(str(tmp_path / "gap.db"))
    # As aiosqlite's close does on its thread, before the event loop learns
    # that the connection is closed.
    await database.read(lambda connection: connection.close())
    try:
        with pytest.raises(StoreError, match="database is closed"):
            await asyncio.wait_for(database.transaction(insert_company, "late"), 5)
    finally:
        await database.close()


def set_busy_timeout(connection: sqlite3.Connection, milliseconds: int) -> None:
    connection.execute(f"PRAGMA busy_timeout = {milliseconds}")


def take_write_lock(path: str) -> sqlite3.Connection:
    """Open a second connection, as another process would, that has the write lock."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


async def test_work_queued_behind_locked_group_fails(tmp_path):
    path = str(tmp_path / "group.db")
    database = await Database.open(path)
    await database.read(set_busy_timeout, 500)
    blocker = take_write_lock(path)
    try:
        first = asyncio.ensure_future(database.transaction(insert_company, "first"))
        # The first group is now waiting out the busy timeout.
        await asyncio.sleep(0.1)
        queued_at = time.monotonic()
        second = asyncio.ensure_future(database.transaction(insert_company, "second"))
        with pytest.raises(sqlite3.OperationalError):
            await first
        with pytest.raises(sqlite3.OperationalError):
            await second
        waited_s = time.monotonic() - queued_at
        blocker.execute("ROLLBACK")
        await database.transaction(insert_company, "after")
        names = await database.read(company_names)
    finally:
        blocker.close()
        await database.close()

    # About 0.4 s: the rest of the first group's wait. A group of its own
    # would have waited the whole 0.5 s busy timeout again, about 0.9 s.
    assert waited_s < 0.7
    assert names == ["after"]


async def test_open_while_another_process_writes(tmp_path):
    path = str(tmp_path / "group.db")
    await (await Database.open(path)).close()
    blocker = take_write_lock(path)
    try:
        started = time.monotonic()
        database = await Database.open(path)
        opened_s = time.monotonic() - started
        names = await database.read(company_names)
        await database.close()
    finally:
        blocker.close()

    # Opening an existing database needs no write lock, so it does not wait
    # out the 5 s busy timeout.
    assert opened_s < 2.0
    assert names == []


async def test_snapshot_reads_past_a_locked_writer(tmp_path):
    path = str(tmp_path / "group.db")
    database = await Database.open(path)
    await database.transaction(insert_company, "before")
    await database.read(set_busy_timeout, 2_000)
    blocker = take_write_lock(path)
    try:
        # The writer's thread now waits out its busy timeout in this group.
        waiting = asyncio.ensure_future(database.transaction(insert_company, "waiting"))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        names = await database.snapshot(company_names)
        snapshot_s = time.monotonic() - started
        blocker.execute("ROLLBACK")
        await waiting
        after = await database.snapshot(company_names)
    finally:
        blocker.close()
        await database.close()

    assert snapshot_s < 1.0
    assert names == ["before"]
    # A snapshot taken after a commit includes it.
    assert after == ["before", "waiting"]


async def test_snapshot_cannot_write(tmp_path):
    database = await Database.open(str(tmp_path / "group.db"))
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await database.snapshot(insert_company, "sneaky")
        names = await database.read(company_names)
    finally:
        await database.close()

    assert names == []


@pytest.mark.parametrize("folder_exists", [True, False], ids=["folder", "no folder"])
async def test_open_through_dangling_symlink_is_private(tmp_path, folder_exists):
    target = tmp_path / "data" / "lassod.db"
    if folder_exists:
        target.parent.mkdir()
    link = tmp_path / "lassod.db"
    link.symlink_to(target)

    database = await Database.open(str(link))
    await database.transaction(insert_company, "acme")
    await database.close()

    assert target.exists()
    assert target.stat().st_mode & 0o777 == 0o600


def busy_timeout_of(connection: sqlite3.Connection) -> int:
    return connection.execute("PRAGMA busy_timeout").fetchone()[0]


async def test_check_writable_read_only_and_locked(tmp_path):
    path = tmp_path / "group.db"
    await (await Database.open(str(path))).close()
    read_only = await Database.open(f"file:{path}?mode=ro")
    try:
        with pytest.raises(StoreError, match="read-only for this process"):
            await read_only.check_writable()
    finally:
        await read_only.close()

    database = await Database.open(str(path))
    blocker = take_write_lock(str(path))
    try:
        started = time.monotonic()
        # Another process's lock is not the file's fault: the check passes.
        await database.check_writable()
        locked_s = time.monotonic() - started
        busy_timeout_ms = await database.read(busy_timeout_of)
    finally:
        blocker.close()
        await database.close()

    assert locked_s < 1.0
    assert busy_timeout_ms == 5000


def fill_page_budget(connection: sqlite3.Connection, name: str) -> None:
    """Insert a row too large for the pages left, so SQLite reports the disk full."""
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")
    try:
        ensure_company(connection, name + "x" * 100_000, 1)
    finally:
        connection.execute("PRAGMA max_page_count = 1000000")


async def test_full_database_fails_whole_group(tmp_path):
    database = await Database.open(str(tmp_path / "group.db"))
    try:
        results = await asyncio.gather(
            database.transaction(insert_company, "first"),
            database.transaction(fill_page_budget, "huge"),
            database.transaction(insert_company, "second"),
            return_exceptions=True,
        )
        names = await database.read(company_names)
        after = await database.transaction(insert_company, "after")
    finally:
        await database.close()

    # SQLite rolls back the whole transaction on SQLITE_FULL, so work that
    # shared the group is not committed either, and its caller learns it.
    # "first" may have committed alone, before the others were queued.
    assert isinstance(results[1], sqlite3.OperationalError)
    assert "full" in str(results[1])
    committed = [
        name
        for name, result in zip(["first", "huge", "second"], results)
        if isinstance(result, str)
    ]
    failed = [result for result in results if isinstance(result, BaseException)]
    assert all(database_module.is_unavailable(result) for result in failed)
    assert names == committed
    assert isinstance(after, str)
