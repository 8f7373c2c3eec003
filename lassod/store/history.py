"""Queries that read delivery history: lists, details and attempts."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class DeliveryFilter:
    """Conditions of a delivery list; None leaves a condition out.

    since_ms is inclusive and until_ms exclusive, both on the creation time.
    """

    company_id: str | None = None
    endpoint_id: str | None = None
    event_name: str | None = None
    status: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    company_id: str
    event_id: str
    event_name: str
    endpoint_id: str
    endpoint_kind: str | None
    url: str | None
    status: str
    attempt_count: int
    next_due_ms: int | None
    last_attempt_ms: int | None
    reason: str | None
    redelivery_of: str | None
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class AttemptRow:
    number: int
    attempt_id: str
    started_ms: int
    duration_ms: int | None
    status_code: int | None
    error_kind: str | None
    response_excerpt: str | None
    outcome: str | None


@dataclass(frozen=True)
class DeliveryDetail:
    delivery: DeliveryRow
    body: bytes
    attempts: list[AttemptRow]


# A table whose webhook was removed has no endpoint row, but its deliveries
# still name the table.
_SELECT = (
    "SELECT d.id, d.company_id, d.event_id, e.name, d.endpoint_id,"
    " COALESCE(p.kind, (SELECT 'table' FROM tables t WHERE t.id = d.endpoint_id)),"
    " p.url, d.status, d.attempt_count, d.next_due_ms,"
    " d.last_attempt_ms, d.reason, d.redelivery_of, d.created_ms, d.updated_ms"
    " FROM deliveries d JOIN events e ON e.id = d.event_id"
    " LEFT JOIN endpoints p ON p.id = d.endpoint_id"
)


def _where(selection: DeliveryFilter) -> tuple[str, list[object]]:
    conditions = []
    values: list[object] = []
    pairs = (
        ("d.company_id = ?", selection.company_id),
        ("d.endpoint_id = ?", selection.endpoint_id),
        ("e.name = ?", selection.event_name),
        ("d.status = ?", selection.status),
        ("d.created_ms >= ?", selection.since_ms),
        ("d.created_ms < ?", selection.until_ms),
    )
    for condition, value in pairs:
        if value is not None:
            conditions.append(condition)
            values.append(value)
    if not conditions:
        return "", values
    return " WHERE " + " AND ".join(conditions), values


def list_deliveries(
    connection: sqlite3.Connection, selection: DeliveryFilter, offset: int, limit: int
) -> tuple[list[DeliveryRow], int]:
    """Return one page of matching deliveries, newest first, and the total."""
    where, values = _where(selection)
    total = connection.execute(
        "SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id" + where,
        values,
    ).fetchone()[0]
    rows = connection.execute(
        _SELECT + where + " ORDER BY d.created_ms DESC, d.rowid DESC LIMIT ? OFFSET ?",
        [*values, limit, offset],
    ).fetchall()
    return [DeliveryRow(*row) for row in rows], total


def get_delivery(
    connection: sqlite3.Connection, company_id: str | None, delivery_id: str
) -> DeliveryDetail | None:
    """Return a delivery with its event body and attempts; None if not found.

    With a company id, another company's delivery is not found.
    """
    row = connection.execute(
        _SELECT + " WHERE d.id = ? AND (? IS NULL OR d.company_id = ?)",
        (delivery_id, company_id, company_id),
    ).fetchone()
    if row is None:
        return None
    body = connection.execute(
        "SELECT e.body FROM events e JOIN deliveries d ON d.event_id = e.id WHERE d.id = ?",
        (delivery_id,),
    ).fetchone()[0]
    attempts = connection.execute(
        "SELECT number, attempt_id, started_ms, duration_ms, status_code, error_kind,"
        " response_excerpt, outcome FROM attempts WHERE delivery_id = ? ORDER BY number",
        (delivery_id,),
    ).fetchall()
    return DeliveryDetail(
        DeliveryRow(*row), bytes(body), [AttemptRow(*attempt) for attempt in attempts]
    )


def company_id_by_name(connection: sqlite3.Connection, name: str) -> str | None:
    row = connection.execute(
        "SELECT id FROM companies WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else row[0]
