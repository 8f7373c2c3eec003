"""Retention: exactly the aged rows go, and the file stops growing under load."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from lassod.clock import now_ms
from lassod.config import RetentionSettings
from lassod.retention import Pruner
from lassod.store import Database
from lassod.store import deliveries as queries
from lassod.store import keys as key_queries
from lassod.store import retention as retention_queries
from tests.conftest import eventually, make_settings

DAY_MS = 24 * 3600 * 1000
NOW_MS = 1_800_000_000_000
SETTINGS = RetentionSettings(
    succeeded_max_age_s=30 * 24 * 3600, abandoned_max_age_s=90 * 24 * 3600, batch_size=2
)


def add_delivery(
    connection: sqlite3.Connection,
    company: str,
    event_id: str,
    status: str,
    age_days: int,
) -> str:
    changed_ms = NOW_MS - age_days * DAY_MS
    queued = queries.insert_delivery(connection, event_id, company, "tbl_x", changed_ms)
    connection.execute(
        "INSERT INTO attempts (delivery_id, number, attempt_id, started_ms, outcome)"
        " VALUES (?, 1, 'a', ?, 'failed')",
        (queued.delivery_id, changed_ms),
    )
    connection.execute(
        "UPDATE deliveries SET status = ?, updated_ms = ? WHERE id = ?",
        (status, changed_ms, queued.delivery_id),
    )
    return queued.delivery_id


def add_event(connection: sqlite3.Connection, company: str, age_days: int) -> str:
    created_ms = NOW_MS - age_days * DAY_MS
    return queries.insert_event(
        connection, company, "table.completed", b"{}", created_ms
    )


def build_history(connection: sqlite3.Connection) -> dict[str, str]:
    company = key_queries.ensure_company(connection, "acme", 0)
    ids = {}
    for name, status, age in (
        ("succeeded_old", "succeeded", 31),
        ("succeeded_young", "succeeded", 29),
        ("abandoned_mid", "abandoned", 60),
        ("abandoned_old", "abandoned", 91),
        ("cancelled_old", "cancelled", 91),
        ("pending_old", "pending", 200),
    ):
        event = add_event(connection, company, age)
        ids[name] = add_delivery(connection, company, event, status, age)
        ids[name + "_event"] = event
    shared = add_event(connection, company, 40)
    ids["shared_pruned"] = add_delivery(connection, company, shared, "succeeded", 40)
    ids["shared_kept"] = add_delivery(connection, company, shared, "succeeded", 10)
    ids["shared_event"] = shared
    ids["lonely_old_event"] = add_event(connection, company, 31)
    ids["lonely_young_event"] = add_event(connection, company, 29)
    for number in range(5):
        event = add_event(connection, company, 35)
        ids[f"batch_{number}"] = add_delivery(
            connection, company, event, "succeeded", 35
        )
    return ids


def remaining(connection: sqlite3.Connection) -> tuple[set[str], set[str], set[str]]:
    deliveries = {row[0] for row in connection.execute("SELECT id FROM deliveries")}
    attempts = {
        row[0] for row in connection.execute("SELECT delivery_id FROM attempts")
    }
    events = {row[0] for row in connection.execute("SELECT id FROM events")}
    return deliveries, attempts, events


@pytest.fixture
async def database(tmp_path):
    database = await Database.open(str(tmp_path / "retention.db"))
    yield database
    await database.close()


async def test_prune_removes_exactly_aged_rows(database):
    ids = await database.transaction(build_history)
    pruner = Pruner(database, SETTINGS)

    totals = await pruner.prune(NOW_MS)

    deliveries, attempts, events = await database.read(remaining)
    pruned = {"succeeded_old", "abandoned_old", "cancelled_old", "shared_pruned"}
    pruned |= {f"batch_{number}" for number in range(5)}
    kept = {"succeeded_young", "abandoned_mid", "pending_old", "shared_kept"}
    assert deliveries == {ids[name] for name in kept}
    assert attempts == {ids[name] for name in kept}
    assert events == {
        ids["succeeded_young_event"],
        ids["abandoned_mid_event"],
        ids["pending_old_event"],
        ids["shared_event"],
        ids["lonely_young_event"],
    }
    assert totals.deliveries == len(pruned)
    assert totals.attempts == len(pruned)
    # The shared event stays; the old event without deliveries goes.
    assert totals.events == len(pruned) - 1 + 1


async def test_prune_twice_removes_nothing_more(database):
    await database.transaction(build_history)
    pruner = Pruner(database, SETTINGS)
    await pruner.prune(NOW_MS)
    before = await database.read(remaining)

    totals = await pruner.prune(NOW_MS)

    assert await database.read(remaining) == before
    assert totals.deliveries == 0
    assert totals.events == 0


async def test_prune_uses_finished_index(database):
    plan = await database.read(
        lambda connection: connection.execute(
            "EXPLAIN QUERY PLAN SELECT id, event_id FROM deliveries"
            " WHERE status != 'pending' AND status = ? AND updated_ms < ?"
            " ORDER BY updated_ms LIMIT ?",
            ("succeeded", 0, 1),
        ).fetchall()
    )

    assert "deliveries_finished" in str([tuple(row) for row in plan])


async def test_database_file_stops_growing(start_lassod, tmp_path, make_receiver):
    settings = make_settings(
        tmp_path,
        retention={"succeeded_max_age_s": 1.0, "interval_s": 0.2, "batch_size": 200},
    )
    lassod = await start_lassod(settings)
    receiver = await make_receiver()
    key = await lassod.new_key()
    body = {
        "name": "T",
        "schema_id": "s",
        "source_text": "x",
        "webhook_url": receiver.url,
    }
    _, table = await lassod.request("POST", "/api/v1/tables", key, json=body)
    database = lassod.daemon.database
    company = await database.read(
        lambda connection: connection.execute(
            "SELECT company_id FROM tables WHERE id = ?", (table["id"],)
        ).fetchone()[0]
    )
    path = settings.database.path
    page_counts = []
    payload = os.urandom(2000).hex().encode()
    for second in range(6):
        # Steady load: 100 events of 4 kB each per second.
        for _ in range(4):
            queued = await database.transaction(
                _emit_many, company, table["id"], payload, 25
            )
            lassod.daemon.scheduler.notify(queued)
        await receiver.wait_for(100 * (second + 1))
        await asyncio.sleep(0.75)
        pages, _ = await database.read(retention_queries.file_pages)
        page_counts.append(pages)

    # page_count is the size the file has once the write-ahead log is
    # checkpointed. Retention keeps about one second of data, so the size
    # levels off after two seconds while the load adds about 125 pages a second.
    assert max(page_counts[3:]) <= page_counts[2] + 25, page_counts
    assert page_counts[-1] < 400, page_counts
    on_disk = os.path.getsize(path) + os.path.getsize(path + "-wal")
    assert on_disk < 8_000_000, on_disk

    async def pruned() -> bool:
        count = await database.read(
            lambda connection: connection.execute(
                "SELECT COUNT(*) FROM events"
            ).fetchone()[0]
        )
        return count < 400

    await eventually(pruned)


def _emit_many(
    connection: sqlite3.Connection,
    company: str,
    endpoint_id: str,
    payload: bytes,
    count: int,
) -> list[queries.QueuedDelivery]:
    from lassod.clock import now_ms

    queued = []
    for _ in range(count):
        queued += queries.emit_event(
            connection, company, "table.completed", payload, [endpoint_id], now_ms()
        )
    return queued


def finished_before(connection: sqlite3.Connection, before_ms: int) -> int:
    row = connection.execute(
        "SELECT COUNT(*) FROM deliveries WHERE status != 'pending' AND updated_ms < ?",
        (before_ms,),
    ).fetchone()
    return row[0]


def set_busy_timeout(connection: sqlite3.Connection, milliseconds: int) -> None:
    connection.execute(f"PRAGMA busy_timeout = {milliseconds}")


async def test_locked_database_logs_one_line(
    database, tmp_path, captured_logs
):
    await database.transaction(build_history)
    await database.read(set_busy_timeout, 50)
    # The pruner runs on the real clock. With no age kept, it prunes every
    # finished delivery last changed before its pass.
    started_ms = now_ms()
    assert await database.read(finished_before, started_ms) > 0
    settings = RetentionSettings(
        succeeded_max_age_s=0, abandoned_max_age_s=0, batch_size=2, interval_s=0.1
    )
    pruner = Pruner(database, settings)
    blocker = sqlite3.connect(str(tmp_path / "retention.db"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    pruner.start()
    try:

        async def failed() -> bool:
            return any(entry["event"] == "retention_failed" for entry in captured_logs)

        await eventually(failed)
        blocker.execute("ROLLBACK")

        async def pruned() -> bool:
            return any(entry["event"] == "retention_pruned" for entry in captured_logs)

        await eventually(pruned)
    finally:
        blocker.close()
        await pruner.stop()

    failure = next(
        entry for entry in captured_logs if entry["event"] == "retention_failed"
    )
    assert failure["log_level"] == "error"
    assert "exc_info" not in failure
    assert failure["error"] == "OperationalError: database is locked"
    assert failure["retry_in_s"] == 0.1
    assert await database.read(finished_before, started_ms) == 0
