"""The SQLite connection: opening, migrations and transactions."""

from __future__ import annotations

import logging
import asyncio
import os
import sqlite3
import time
from importlib import resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import aiosqlite

Result = TypeVar("Result")

# aiosqlite logs every call with its arguments at DEBUG, and the arguments
# carry webhook secrets and auth header values.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


class StoreError(Exception):
    """The database could not be opened or migrated."""


class Database:
    """One SQLite connection whose work runs on aiosqlite's thread.

    Each call to `transaction` or `read` runs one plain function against the
    sqlite3 connection in a single thread hand-off, so a transaction of many
    statements costs one hand-off and no other coroutine can interleave
    statements into it.
    """

    def __init__(self, connection: aiosqlite.Connection, path: str) -> None:
        self._connection = connection
        self.path = path
        # Called with (query function name, seconds) after each operation.
        self.on_operation: Callable[[str, float], None] | None = None
        self._queued: list[_Work] = []
        self._committing = False
        self._commit_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str) -> Database:
        """Open (creating with mode 0600 if needed) and migrate the database."""
        _create_private_file(path)
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open database {path!r}: {error}") from error
        database = cls(connection, path)
        try:
            await database.read(_configure)
            await database.read(_migrate)
        except sqlite3.Error as error:
            await connection.close()
            raise StoreError(f"cannot prepare database {path!r}: {error}") from error
        return database

    async def close(self) -> None:
        await self._connection.close()

    async def transaction(
        self, work: Callable[..., Result], *args: Any
    ) -> Result:
        """Run work(connection, *args) inside BEGIN IMMEDIATE ... COMMIT.

        Transactions requested while a commit is running share the next
        commit, each inside its own savepoint: one that raises is rolled
        back alone, and every caller resumes only after the shared COMMIT.
        One fsync then covers many API requests and attempt records.
        """
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queued.append(_Work(work, args, future))
        if not self._committing:
            self._committing = True
            self._commit_task = asyncio.create_task(
                self._commit_queued(), name="lassod-group-commit"
            )
        return await future

    async def _commit_queued(self) -> None:
        try:
            while self._queued:
                group, self._queued = self._queued, []
                try:
                    await self._run_group(group)
                    _resolve(group)
                except asyncio.CancelledError:
                    for item in group:
                        item.future.cancel()
                    raise
                except BaseException as error:
                    for item in group:
                        if not item.future.done():
                            item.future.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
        finally:
            self._committing = False

    async def _run_group(self, group: list[_Work]) -> None:
        """Commit a group; each of its query functions is timed as the group."""
        started = time.perf_counter()
        try:
            await self._run(None, _in_group, group)
        finally:
            if self.on_operation is not None:
                elapsed = time.perf_counter() - started
                for name in {item.function.__name__ for item in group}:
                    self.on_operation(name, elapsed)

    async def read(self, work: Callable[..., Result], *args: Any) -> Result:
        """Run work(connection, *args) outside an explicit transaction."""
        return await self._run(work.__name__, work, *args)

    async def _run(self, name: str | None, work: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            # NOTE: aiosqlite has no public call for running a function on its
            # thread; _execute is that call in aiosqlite 0.20 to 0.22 (pinned in
            # pyproject.toml). The function receives the sqlite3 connection.
            return await self._connection._execute(
                _call_with_connection, self, work, args
            )
        finally:
            if self.on_operation is not None and name is not None:
                self.on_operation(name, time.perf_counter() - started)

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection; use it only on aiosqlite's thread."""
        return self._connection._conn


def _call_with_connection(
    database: Database, work: Callable[..., Any], args: tuple[Any, ...]
) -> Any:
    return work(database.raw, *args)


@dataclass
class _Work:
    """One caller's transaction waiting for a group commit."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


def _in_group(connection: sqlite3.Connection, group: list[_Work]) -> None:
    """Run each work in its own savepoint, then commit them all.

    Runs on aiosqlite's thread and stores each result or error on its item.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        for item in group:
            connection.execute("SAVEPOINT work")
            try:
                item.result = item.function(connection, *item.args)
            except Exception as error:
                item.error = error
                connection.execute("ROLLBACK TO work")
            connection.execute("RELEASE work")
        connection.execute("COMMIT")
    except BaseException:
        # Some errors (a full disk, for one) end the transaction themselves.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _resolve(group: list[_Work]) -> None:
    for item in group:
        if item.future.done():
            continue
        if item.error is not None:
            item.future.set_exception(item.error)
        else:
            item.future.set_result(item.result)


def _create_private_file(path: str) -> None:
    if path == ":memory:" or path.startswith("file:"):
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        raise StoreError(f"cannot create database {path!r}: {error}") from error
    os.close(descriptor)


def _configure(connection: sqlite3.Connection) -> None:
    connection.row_factory = sqlite3.Row
    # Takes effect only on a new, empty database; lets retention return
    # pruned pages to the file system with PRAGMA incremental_vacuum.
    connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
    connection.execute("PRAGMA journal_mode = WAL")
    # FULL makes every COMMIT durable across power loss, not just a crash.
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA busy_timeout = 5000")


def _migrate(connection: sqlite3.Connection) -> None:
    """Apply every migrations/NNNN_*.sql file newer than user_version."""
    current = connection.execute("PRAGMA user_version").fetchone()[0]
    folder = resources.files("lassod.store") / "migrations"
    scripts = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    for script in scripts:
        version = int(script.name.split("_", 1)[0])
        if version <= current:
            continue
        connection.executescript(
            "BEGIN IMMEDIATE;\n"
            + script.read_text()
            + f"\nPRAGMA user_version = {version};\nCOMMIT;"
        )


def ping(connection: sqlite3.Connection) -> None:
    """Run a trivial query; raise StoreError when the database fails it."""
    try:
        connection.execute("SELECT 1").fetchone()
    except sqlite3.Error as error:
        raise StoreError(f"database query failed: {error}") from error
