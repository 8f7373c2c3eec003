"""Queries that prune old deliveries, attempts and events."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class PruneCount:
    """Rows removed by one batch."""

    deliveries: int
    attempts: int
    events: int


def prune_finished(
    connection: sqlite3.Connection, status: str, before_ms: int, limit: int
) -> PruneCount:
    """Delete up to `limit` deliveries in `status` last changed before before_ms.

    Their attempts go with them, and so do their events once no delivery
    refers to the event any more.
    """
    # The query repeats the partial index's condition, status != 'pending',
    # because SQLite uses a partial index only when the query states it.
    rows = connection.execute(
        "SELECT id, event_id FROM deliveries"
        " WHERE status != 'pending' AND status = ? AND updated_ms < ?"
        " ORDER BY updated_ms LIMIT ?",
        (status, before_ms, limit),
    ).fetchall()
    if not rows:
        return PruneCount(0, 0, 0)
    delivery_ids = [(row[0],) for row in rows]
    attempts = connection.executemany(
        "DELETE FROM attempts WHERE delivery_id = ?", delivery_ids
    ).rowcount
    connection.executemany("DELETE FROM deliveries WHERE id = ?", delivery_ids)
    event_ids = [(event_id,) for event_id in {row[1] for row in rows}]
    events = connection.executemany(
        "DELETE FROM events WHERE id = ?"
        " AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = events.id)",
        event_ids,
    ).rowcount
    return PruneCount(len(rows), attempts, events)


def prune_unreferenced_events(
    connection: sqlite3.Connection,
    after: tuple[int, str],
    before_ms: int,
    limit: int,
) -> tuple[int, tuple[int, str] | None]:
    """Delete events created before before_ms that no delivery refers to.

    Scans at most `limit` events after `after` = (created_ms, id) and returns
    the number deleted and where the next scan starts, or None at the end.
    """
    rows = connection.execute(
        "SELECT created_ms, id FROM events"
        " WHERE created_ms < ? AND (created_ms > ? OR (created_ms = ? AND id > ?))"
        " ORDER BY created_ms, id LIMIT ?",
        (before_ms, after[0], after[0], after[1], limit),
    ).fetchall()
    if not rows:
        return 0, None
    deleted = connection.executemany(
        "DELETE FROM events WHERE id = ?"
        " AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = events.id)",
        [(row[1],) for row in rows],
    ).rowcount
    return deleted, (rows[-1][0], rows[-1][1])


def incremental_vacuum(connection: sqlite3.Connection, max_pages: int) -> int:
    """Return up to max_pages free pages to the file system; return the count.

    Works only on a database created with auto_vacuum = INCREMENTAL.
    """
    free_before = connection.execute("PRAGMA freelist_count").fetchone()[0]
    # The pragma frees one page per step, so its rows must be read to the end.
    connection.execute(f"PRAGMA incremental_vacuum({int(max_pages)})").fetchall()
    free_after = connection.execute("PRAGMA freelist_count").fetchone()[0]
    return free_before - free_after


def file_pages(connection: sqlite3.Connection) -> tuple[int, int]:
    """Return (page_count, freelist_count) of the main database file."""
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    return pages, free
