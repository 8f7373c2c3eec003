"""Queries for tables and their webhook endpoints."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace

import orjson

from lassod import events, signing, tables
from lassod.ids import new_id
from lassod.store import endpoints
from lassod.store.deliveries import QueuedDelivery, emit_event
from lassod.store.endpoints import EndpointRow, EndpointSettings
from lassod.tables import NewTable, StatusReport, TableRow, WebhookChange

_SELECT = (
    "SELECT t.id, t.company_id, t.name, t.schema_id, t.status, t.progress, t.total_rows,"
    " t.error_message, t.created_us, t.updated_us, p.url, p.auth_header_name,"
    " p.secret IS NOT NULL,"
    " CASE WHEN p.id IS NOT NULL THEN"
    " (SELECT d.status FROM deliveries d WHERE d.endpoint_id = t.id"
    "  AND d.status != 'cancelled' ORDER BY d.created_ms DESC, d.rowid DESC LIMIT 1)"
    " END,"
    " (SELECT MAX(d.last_attempt_ms) FROM deliveries d WHERE d.endpoint_id = t.id)"
    " FROM tables t LEFT JOIN endpoints p ON p.id = t.id"
)


@dataclass(frozen=True)
class StatusChange:
    """The result of a status report: apply, noop, conflict or not_found."""

    result: str
    table: TableRow | None
    queued: list[QueuedDelivery]


def _row(row: sqlite3.Row | tuple) -> TableRow:
    return TableRow(
        id=row[0],
        company_id=row[1],
        name=row[2],
        schema_id=row[3],
        status=row[4],
        progress=row[5],
        total_rows=row[6],
        error_message=row[7],
        created_us=row[8],
        updated_us=row[9],
        webhook_url=row[10],
        auth_header_name=row[11],
        has_secret=bool(row[12]),
        webhook_status=row[13] or "none",
        webhook_last_attempt_ms=row[14],
    )


def insert_table(
    connection: sqlite3.Connection, company_id: str, new: NewTable, now_us: int
) -> TableRow:
    table_id = new_id("tbl")
    connection.execute(
        "INSERT INTO tables (id, company_id, name, schema_id, source, additional_context,"
        " status, created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
        (
            table_id,
            company_id,
            new.name,
            new.schema_id,
            orjson.dumps(new.source).decode(),
            new.additional_context,
            now_us,
            now_us,
        ),
    )
    if new.webhook_url is not None:
        connection.execute(
            "INSERT INTO endpoints (id, company_id, kind, url, secret, auth_header_name,"
            " auth_header_value, created_us, updated_us)"
            " VALUES (?, ?, 'table', ?, ?, ?, ?, ?, ?)",
            (
                table_id,
                company_id,
                new.webhook_url,
                new.webhook_secret,
                new.auth_header_name,
                new.auth_header_value,
                now_us,
                now_us,
            ),
        )
    # Built here rather than read back: one statement fewer in the group
    # commit. tests/test_tables_api.py checks it against get_table. A secret
    # or auth header comes only with a webhook_url (parse_new_table).
    return TableRow(
        id=table_id,
        company_id=company_id,
        name=new.name,
        schema_id=new.schema_id,
        status="queued",
        progress=0.0,
        total_rows=None,
        error_message=None,
        created_us=now_us,
        updated_us=now_us,
        webhook_url=new.webhook_url,
        auth_header_name=new.auth_header_name,
        has_secret=new.webhook_secret is not None,
        webhook_status="none",
        webhook_last_attempt_ms=None,
    )


def get_table(connection: sqlite3.Connection, company_id: str, table_id: str) -> TableRow | None:
    row = connection.execute(
        _SELECT + " WHERE t.id = ? AND t.company_id = ?", (table_id, company_id)
    ).fetchone()
    return None if row is None else _row(row)


def list_tables(
    connection: sqlite3.Connection, company_id: str, offset: int, limit: int
) -> tuple[list[TableRow], int]:
    """Return one page of a company's tables, newest first, and the total."""
    total = connection.execute(
        "SELECT COUNT(*) FROM tables WHERE company_id = ?", (company_id,)
    ).fetchone()[0]
    rows = connection.execute(
        _SELECT + " WHERE t.company_id = ? ORDER BY t.created_us DESC, t.id DESC"
        " LIMIT ? OFFSET ?",
        (company_id, limit, offset),
    ).fetchall()
    return [_row(row) for row in rows], total


def apply_status_report(
    connection: sqlite3.Connection,
    company_id: str,
    table_id: str,
    report: StatusReport,
    now_us: int,
) -> StatusChange:
    """Apply a status report and, on a terminal status, emit its event.

    The update, the event and its delivery share the caller's transaction.
    """
    table = get_table(connection, company_id, table_id)
    if table is None:
        return StatusChange("not_found", None, [])
    result = tables.transition(table.status, report.status)
    if result != "apply":
        return StatusChange(result, table, [])

    progress = report.progress
    if progress is None:
        progress = 100.0 if report.status == "completed" else table.progress
    total_rows = table.total_rows if report.total_rows is None else report.total_rows
    error_message = table.error_message if report.error_message is None else report.error_message
    connection.execute(
        "UPDATE tables SET status = ?, progress = ?, total_rows = ?, error_message = ?,"
        " updated_us = ? WHERE id = ?",
        (report.status, progress, total_rows, error_message, now_us, table_id),
    )
    # The row as get_table would now read it, without the two reads, which
    # took about a quarter of the report's time (tests/test_tables_api.py).
    updated = replace(
        table,
        status=report.status,
        progress=float(progress),
        total_rows=total_rows,
        error_message=error_message,
        updated_us=now_us,
    )
    queued: list[QueuedDelivery] = []
    if report.status in tables.TERMINAL:
        name = events.TABLE_COMPLETED if report.status == "completed" else events.TABLE_FAILED
        now_ms = now_us // 1000
        body = events.build_body(name, now_ms, tables.event_data(updated))
        endpoints = [table_id] if updated.webhook_url is not None else []
        queued = emit_event(connection, company_id, name, body, endpoints, now_ms)
        if queued:
            # The new delivery is the table's latest.
            updated = replace(updated, webhook_status="pending")
    return StatusChange("apply", updated, queued)


def change_webhook(
    connection: sqlite3.Connection,
    company_id: str,
    table_id: str,
    change: WebhookChange,
    now_us: int,
    grace_ms: int,
) -> tuple[str, TableRow | None]:
    """Apply a webhook PATCH: applied, url_required or not_found.

    Pending deliveries keep their place and use the new settings, because
    each attempt reads the endpoint when it starts. Removing the webhook
    cancels them. A changed secret keeps the old one signing for grace_ms.
    """
    table = get_table(connection, company_id, table_id)
    if table is None:
        return "not_found", None
    current = endpoints.get_endpoint(connection, table_id)
    now_ms = now_us // 1000

    url = current.url if current is not None else None
    if "url" in change.changed:
        url = change.url
    if url is None:
        if change.secret is not None or change.auth_header_name is not None:
            return "url_required", table
        if current is not None:
            endpoints.delete_endpoint(connection, table_id, "webhook removed", now_ms)
        return "applied", get_table(connection, company_id, table_id)

    settings = _merged_settings(current, change, url, now_ms, grace_ms)
    endpoints.save_endpoint(connection, table_id, company_id, "table", settings, now_us)
    return "applied", get_table(connection, company_id, table_id)


def _merged_settings(
    current: EndpointRow | None,
    change: WebhookChange,
    url: str,
    now_ms: int,
    grace_ms: int,
) -> EndpointSettings:
    secret = current.secret if current is not None else None
    if "secret" in change.changed:
        secret = change.secret
    header_name = current.auth_header_name if current is not None else None
    header_value = current.auth_header_value if current is not None else None
    if "auth_header" in change.changed:
        header_name, header_value = change.auth_header_name, change.auth_header_value

    previous: tuple[str | None, int | None] = (None, None)
    if current is not None:
        previous = signing.rotate(
            current.secret,
            (current.previous_secret, current.previous_secret_until_ms),
            secret,
            now_ms,
            grace_ms,
        )
    return EndpointSettings(
        url, secret, previous[0], previous[1], header_name, header_value
    )
