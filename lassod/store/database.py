"""The SQLite connection: opening, migrations and transactions."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import threading
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

# Group commits the SQLite thread runs back to back before it takes the
# reads queued behind them.
GROUPS_PER_TURN = 4


# The ->> JSON operator that batch statements use came in SQLite 3.38.
MINIMUM_SQLITE = (3, 38, 0)


def sqlite_version_info() -> tuple[int, ...]:
    """Return the version of the SQLite library that sqlite3 uses."""
    return sqlite3.sqlite_version_info


class StoreError(Exception):
    """The database could not be opened or migrated, or is closed."""


# PRAGMA auto_vacuum's value for INCREMENTAL.
_INCREMENTAL = 2

# SQLite result codes of a database that is locked, failing or full, as
# opposed to a fault in a query.
_UNAVAILABLE_CODES = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_PROTOCOL",
)


def is_unavailable(error: BaseException) -> bool:
    """Return whether an error means the database is locked, failing or closed.

    Work that failed this way may succeed once the database recovers.
    """
    if isinstance(error, StoreError):
        return True
    if not isinstance(error, sqlite3.OperationalError):
        return False
    return (error.sqlite_errorname or "").startswith(_UNAVAILABLE_CODES)


class Database:
    """One SQLite connection whose work runs on aiosqlite's thread.

    Each call to `transaction` or `read` runs one plain function against the
    sqlite3 connection in a single thread hand-off, so a transaction of many
    statements costs one hand-off and no other coroutine can interleave
    statements into it. A second, read-only connection on its own thread
    serves `snapshot`, for the API's key lookups.
    """

    def __init__(
        self,
        connection: aiosqlite.Connection,
        path: str,
        reader: aiosqlite.Connection | None = None,
    ) -> None:
        self._connection = connection
        self._reader = reader
        self.path = path
        # Called with (query function name, seconds) after each operation.
        self.on_operation: Callable[[str, float], None] | None = None
        # Transactions waiting for the next group, shared with the SQLite
        # thread. _committing is True while that thread has a turn to run.
        self._lock = threading.Lock()
        self._queued: list[_Work] = []
        self._committing = False
        # The error of the last group commit that failed because the
        # database was locked, full or failing, and its time.monotonic().
        # A later commit does not clear them: on a full disk, a commit that
        # changes no page (a retention pass that deletes nothing) succeeds.
        self.write_error: str | None = None
        self.write_error_at: float | None = None

    @classmethod
    async def open(cls, path: str) -> Database:
        """Open (creating with mode 0600 if needed) and migrate the database."""
        version = sqlite_version_info()
        if version < MINIMUM_SQLITE:
            raise StoreError(
                "lassod needs SQLite 3.38 or newer for its JSON operators, but this"
                f" Python uses SQLite {'.'.join(map(str, version))}: run lassod with"
                " a Python whose sqlite3 module links a newer SQLite (Debian 12 has 3.40)"
            )
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
            message = f"cannot prepare database {path!r}: {error}"
            if is_unavailable(error) and "locked" in str(error):
                message += (
                    "; another process holds a write lock on it, so start lassod"
                    " again once that process has finished"
                )
            raise StoreError(message) from error
        try:
            database._reader = await _open_reader(path)
        except sqlite3.Error as error:
            await connection.close()
            raise StoreError(
                f"cannot open database {path!r} to read: {error}"
            ) from error
        return database

    async def check_writable(self) -> None:
        """Raise StoreError if the database file opened read-only.

        SQLite falls back to read-only when the process may not write the
        file, and only writes fail then. A lock held by another process
        lets the check pass at once, since that is not the file's fault.
        """
        try:
            await self.read(_write_nothing)
        except sqlite3.OperationalError as error:
            if (error.sqlite_errorname or "").startswith("SQLITE_READONLY"):
                raise StoreError(
                    f"database {self.path!r} is read-only for this process: make"
                    " the file, its -wal and -shm files and its folder writable"
                    " (under systemd, check ReadWritePaths)"
                ) from error
            if not is_unavailable(error):
                raise

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        await self._connection.close()

    def submit(self, work: Callable[..., Result], *args: Any) -> asyncio.Future[Result]:
        """Queue work(connection, *args) for the next group commit.

        Returns a future that resolves after the COMMIT with work's result,
        or with its exception. Callable without awaiting, so a caller can
        react to the commit in a callback.
        """
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._queued.append(_Work(work, args, future))
            if self._committing:
                return future
            self._committing = True
        self._start_turn()
        return future

    async def transaction(
        self, work: Callable[..., Result], *args: Any
    ) -> Result:
        """Run work(connection, *args) inside BEGIN IMMEDIATE ... COMMIT.

        Transactions requested while a commit is running share the next
        commit, each inside its own savepoint: one that raises is rolled
        back alone, and every caller resumes only after the shared COMMIT.
        One fsync then covers many API requests and attempt records.
        """
        return await self.submit(work, *args)

    def _start_turn(self) -> None:
        """Hand the SQLite thread a turn of back-to-back group commits, now.

        The turn goes on aiosqlite's queue at once rather than from a new
        task, which would wait for the event loop's next pass. Under load a
        pass takes milliseconds, and every transaction waited for it. Queued
        at once, the median of POST /api/v1/tables under load fell from
        about 15 to 12 ms (docs/benchmarks.md).
        """
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        turn.add_done_callback(self._turn_ended)
        connection = self._connection
        # NOTE: this copies what _execute does before it awaits in aiosqlite
        # 0.20 to 0.22, the versions pyproject.toml allows. It checks that the
        # connection is open, then puts (future, function) on the _tx queue.
        if not connection._running or not connection._connection:
            turn.set_exception(ValueError("Connection closed"))
            return
        connection._tx.put_nowait((turn, functools.partial(_commit_turn, self, loop)))

    def _turn_ended(self, turn: asyncio.Future[None]) -> None:
        """Fail the queued work if a turn could not run."""
        if turn.cancelled() or turn.exception() is None:
            return
        error = turn.exception()
        with self._lock:
            group, self._queued = self._queued, []
            self._committing = False
        if isinstance(error, ValueError):
            # The connection is closed: nothing queued can be committed.
            error = StoreError("database is closed")
        for item in group:
            if not item.future.done():
                item.future.set_exception(error)

    def _finish_group(
        self, group: list[_Work], elapsed: float, failure: BaseException | None
    ) -> None:
        """Resolve a group's futures on the event loop, after its commit or failure."""
        if failure is not None and is_unavailable(failure):
            self.write_error = str(failure)
            self.write_error_at = time.monotonic()
        if self.on_operation is not None:
            for name in {item.function.__name__ for item in group}:
                self.on_operation(name, elapsed)
        _resolve(group)

    async def read(self, work: Callable[..., Result], *args: Any) -> Result:
        """Run work(connection, *args) outside an explicit transaction."""
        return await self._run(work.__name__, work, *args)

    async def snapshot(self, work: Callable[..., Result], *args: Any) -> Result:
        """Run work(connection, *args) in one read transaction, on the reader.

        The reads see every committed transaction and one consistent state.
        They wait neither behind group commits on the writer's thread nor,
        in WAL mode, for another process's write lock. A database in memory
        or opened by URI has no second connection, so its snapshots run as
        `read` does.

        Keep snapshots short and rare. A read that compares time stamps with
        writes, such as the changes feed, must use `read`: a group commit
        can hold a write stamped earlier that a snapshot does not see yet.
        And while a snapshot is open, a checkpoint cannot restart the WAL,
        so snapshots under steady load let the WAL file grow (to 165 MB in
        2.5 minutes with all API reads on this connection).
        """
        if self._reader is None:
            return await self.read(work, *args)
        started = time.perf_counter()
        try:
            return await self._reader._execute(
                _call_in_snapshot, self._reader, work, args
            )
        finally:
            if self.on_operation is not None:
                self.on_operation(work.__name__, time.perf_counter() - started)

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
        """The open sqlite3 connection, for use on aiosqlite's thread only.

        Raises ValueError once the connection is closed. aiosqlite closes it
        on its thread before the event loop learns of that, so work queued in
        between would otherwise fail with sqlite3's ProgrammingError.
        """
        return _open_connection(self._connection)


def _open_connection(connection: aiosqlite.Connection) -> sqlite3.Connection:
    """Return the sqlite3 connection under an aiosqlite one, or raise ValueError."""
    raw = connection._conn
    try:
        raw.total_changes
    except sqlite3.ProgrammingError as error:
        raise ValueError("Connection closed") from error
    return raw


async def _open_reader(path: str) -> aiosqlite.Connection | None:
    """Open the read-only second connection, or return None for :memory: or a URI."""
    if path == ":memory:" or path.startswith("file:"):
        return None
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
    try:
        reader.row_factory = sqlite3.Row
        await reader.execute("PRAGMA busy_timeout = 5000")
        await reader.execute("PRAGMA query_only = ON")
    except BaseException:
        await reader.close()
        raise
    return reader


def _call_in_snapshot(
    reader: aiosqlite.Connection, work: Callable[..., Any], args: tuple[Any, ...]
) -> Any:
    connection = _open_connection(reader)
    connection.execute("BEGIN")
    try:
        return work(connection, *args)
    finally:
        connection.execute("ROLLBACK")


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


def _commit_turn(database: Database, loop: asyncio.AbstractEventLoop) -> None:
    """Commit queued groups one after another on aiosqlite's thread.

    A group queued during a commit starts as soon as that commit ends,
    without waiting for the event loop to hand it over. After
    GROUPS_PER_TURN groups, or after a group fails, the turn ends, so that
    reads queued behind it run, and the event loop starts a new turn.
    """
    # Raises ValueError, before any group is taken, if the connection closed.
    connection = database.raw
    for _ in range(GROUPS_PER_TURN):
        with database._lock:
            group, database._queued = database._queued, []
            if not group:
                database._committing = False
                return
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            _in_group(connection, group)
        except BaseException as error:
            # No work in the group was committed.
            failure = error
            for item in group:
                item.error = error
        elapsed = time.perf_counter() - started
        _call_on_loop(loop, database._finish_group, group, elapsed, failure)
        if failure is not None:
            if is_unavailable(failure):
                _fail_queued(database, loop, failure)
            # A locked or failing database may block each group for the
            # busy timeout: let queued reads run before the next try.
            break
    _call_on_loop(loop, database._start_turn)


def _fail_queued(
    database: Database, loop: asyncio.AbstractEventLoop, error: BaseException
) -> None:
    """Fail the work queued during a group that found the database unavailable.

    That work already waited up to the busy timeout behind the failed
    group. Another group would make it wait that long again, so an API
    request could take twice the busy timeout to get its 503. None of it
    ran, so its callers may simply try again.
    """
    with database._lock:
        queued, database._queued = database._queued, []
    for item in queued:
        item.error = error
    if queued:
        # Resolved without _finish_group, because work that never ran has no
        # duration for the operation metrics.
        _call_on_loop(loop, _resolve, queued)


def _call_on_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any
) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        # The event loop is closed: the process is exiting.
        pass


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
                if not connection.in_transaction:
                    # SQLite rolled back the whole transaction, as it may on
                    # SQLITE_FULL or SQLITE_IOERR, so no work of the group
                    # can commit. Each fails with this error.
                    raise
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
    # A symbolic link whose target is missing would make O_EXCL fail, and
    # SQLite would then create the target with the umask's mode.
    path = os.path.realpath(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        raise StoreError(f"cannot create database {path!r}: {error}") from error
    os.close(descriptor)


def _write_nothing(connection: sqlite3.Connection) -> None:
    """Rewrite user_version with its own value, then roll back.

    With the busy timeout set to 0 here, another process's write lock makes
    this fail at once with SQLITE_BUSY instead of after the timeout.
    """
    busy_timeout_ms = int(connection.execute("PRAGMA busy_timeout").fetchone()[0])
    connection.execute("PRAGMA busy_timeout = 0")
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            connection.execute(f"PRAGMA user_version = {version}")
        finally:
            connection.execute("ROLLBACK")
    finally:
        connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")


def _configure(connection: sqlite3.Connection) -> None:
    connection.row_factory = sqlite3.Row
    # Takes effect only on a new, empty database; lets retention return
    # pruned pages to the file system with PRAGMA incremental_vacuum.
    # Setting it takes the write lock even when nothing changes, which
    # would keep lassod from starting while another process holds the lock.
    if connection.execute("PRAGMA auto_vacuum").fetchone()[0] != _INCREMENTAL:
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
