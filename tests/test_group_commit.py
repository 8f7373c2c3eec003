"""Database.transaction: concurrent transactions share one commit."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from lassod.store import Database
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
