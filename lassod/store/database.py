"""The SQLite connection: opening, migrations and transactions."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from importlib import resources
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
        """Run work(connection, *args) inside BEGIN IMMEDIATE ... COMMIT."""
        return await self._run(work.__name__, _in_transaction, work, *args)

    async def read(self, work: Callable[..., Result], *args: Any) -> Result:
        """Run work(connection, *args) outside an explicit transaction."""
        return await self._run(work.__name__, work, *args)

    async def _run(self, name: str, work: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            # NOTE: aiosqlite has no public call for running a function on its
            # thread; _execute is that call in aiosqlite 0.20 to 0.22 (pinned in
            # pyproject.toml). The function receives the sqlite3 connection.
            return await self._connection._execute(
                _call_with_connection, self, work, args
            )
        finally:
            if self.on_operation is not None:
                self.on_operation(name, time.perf_counter() - started)

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection; use it only on aiosqlite's thread."""
        return self._connection._conn


def _call_with_connection(
    database: Database, work: Callable[..., Any], args: tuple[Any, ...]
) -> Any:
    return work(database.raw, *args)


def _in_transaction(connection: sqlite3.Connection, work: Callable[..., Any], *args: Any) -> Any:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection, *args)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


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
