"""Queries for catalog webhook subscriptions and the fan-out of catalog events."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from lassod import events
from lassod.catalog.subscriptions import NewSubscription, SubscriptionRow
from lassod.ids import new_uuid
from lassod.signing import rotate
from lassod.store.deliveries import (
    QueuedDelivery,
    cancel_pending_for_endpoint,
    emit_event,
)

_SELECT = (
    "SELECT s.id, s.company_id, p.url, s.events, s.description, p.active,"
    " p.auth_header_name, p.secret IS NOT NULL, s.created_us,"
    # Deactivation by lassod changes only the endpoint row.
    " MAX(s.updated_us, p.updated_us),"
    " p.disabled_reason"
    " FROM subscriptions s JOIN endpoints p ON p.id = s.id"
)
_ENDPOINT_COLUMNS = ("url", "active", "secret", "auth_header_name", "auth_header_value")
_SUBSCRIPTION_COLUMNS = ("events", "description")


def _row(row: sqlite3.Row | tuple) -> SubscriptionRow:
    return SubscriptionRow(
        id=row[0],
        company_id=row[1],
        url=row[2],
        events=tuple(orjson.loads(row[3])),
        description=row[4],
        active=bool(row[5]),
        auth_header_name=row[6],
        has_secret=bool(row[7]),
        created_us=row[8],
        updated_us=row[9],
        disabled_reason=row[10],
    )


def emit_catalog_event(
    connection: sqlite3.Connection,
    company_id: str,
    name: str,
    data: dict[str, Any],
    now_us: int,
) -> list[QueuedDelivery]:
    """Store an event with one delivery per active subscription that asked for it.

    Runs inside the caller's transaction, next to the change it reports.
    """
    rows = connection.execute(
        "SELECT s.id FROM subscriptions s JOIN endpoints p ON p.id = s.id"
        " WHERE s.company_id = ? AND p.active = 1"
        " AND EXISTS (SELECT 1 FROM json_each(s.events) WHERE json_each.value = ?)"
        " ORDER BY s.created_us, s.id",
        (company_id, name),
    ).fetchall()
    now_ms = now_us // 1000
    body = events.build_body(name, now_ms, data)
    return emit_event(
        connection, company_id, name, body, [row[0] for row in rows], now_ms
    )


def insert_subscription(
    connection: sqlite3.Connection, company_id: str, new: NewSubscription, now_us: int
) -> SubscriptionRow:
    subscription_id = new_uuid()
    connection.execute(
        "INSERT INTO endpoints (id, company_id, kind, url, secret, auth_header_name,"
        " auth_header_value, active, created_us, updated_us)"
        " VALUES (?, ?, 'subscription', ?, ?, ?, ?, ?, ?, ?)",
        (
            subscription_id,
            company_id,
            new.url,
            new.secret,
            new.auth_header_name,
            new.auth_header_value,
            int(new.active),
            now_us,
            now_us,
        ),
    )
    connection.execute(
        "INSERT INTO subscriptions (id, company_id, events, description, created_us,"
        " updated_us) VALUES (?, ?, ?, ?, ?, ?)",
        (
            subscription_id,
            company_id,
            orjson.dumps(list(new.events)).decode(),
            new.description,
            now_us,
            now_us,
        ),
    )
    return _require(connection, company_id, subscription_id)


def get_subscription(
    connection: sqlite3.Connection, company_id: str, subscription_id: str
) -> SubscriptionRow | None:
    row = connection.execute(
        _SELECT + " WHERE s.id = ? AND s.company_id = ?", (subscription_id, company_id)
    ).fetchone()
    return None if row is None else _row(row)


def list_subscriptions(
    connection: sqlite3.Connection, company_id: str, offset: int, limit: int
) -> tuple[list[SubscriptionRow], int]:
    """Return one page of a company's subscriptions, newest first, and the total."""
    total = connection.execute(
        "SELECT COUNT(*) FROM subscriptions WHERE company_id = ?", (company_id,)
    ).fetchone()[0]
    rows = connection.execute(
        _SELECT + " WHERE s.company_id = ? ORDER BY s.created_us DESC, s.id DESC"
        " LIMIT ? OFFSET ?",
        (company_id, limit, offset),
    ).fetchall()
    return [_row(row) for row in rows], total


def update_subscription(
    connection: sqlite3.Connection,
    company_id: str,
    subscription_id: str,
    changes: dict[str, Any],
    now_us: int,
    rotation_grace_ms: int,
) -> SubscriptionRow | None:
    """Apply PATCH changes; pending retries read the new endpoint columns.

    A new secret keeps the old one signing for rotation_grace_ms. Turning a
    subscription back on clears why and since when lassod had turned it off.
    """
    if get_subscription(connection, company_id, subscription_id) is None:
        return None
    endpoint = {name: changes[name] for name in _ENDPOINT_COLUMNS if name in changes}
    if "secret" in endpoint:
        old = connection.execute(
            "SELECT secret, previous_secret, previous_secret_until_ms FROM endpoints"
            " WHERE id = ?",
            (subscription_id,),
        ).fetchone()
        previous, until_ms = rotate(
            old[0], (old[1], old[2]), endpoint["secret"], now_us // 1000, rotation_grace_ms
        )
        endpoint["previous_secret"] = previous
        endpoint["previous_secret_until_ms"] = until_ms
    if "active" in endpoint:
        endpoint["active"] = int(endpoint["active"])
        if endpoint["active"]:
            endpoint["disabled_reason"] = None
            endpoint["disabled_ms"] = None
            endpoint["failing_since_ms"] = None
    subscription = {
        name: changes[name] for name in _SUBSCRIPTION_COLUMNS if name in changes
    }
    if "events" in subscription:
        subscription["events"] = orjson.dumps(list(subscription["events"])).decode()
    _update(connection, "endpoints", subscription_id, endpoint, now_us)
    _update(connection, "subscriptions", subscription_id, subscription, now_us)
    return _require(connection, company_id, subscription_id)


def delete_subscription(
    connection: sqlite3.Connection, company_id: str, subscription_id: str, now_us: int
) -> int | None:
    """Delete a subscription and cancel its pending deliveries.

    Returns how many deliveries were cancelled, or None when not found.
    """
    if get_subscription(connection, company_id, subscription_id) is None:
        return None
    cancelled = cancel_pending_for_endpoint(
        connection, subscription_id, "subscription deleted", now_us // 1000
    )
    connection.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,))
    connection.execute("DELETE FROM endpoints WHERE id = ?", (subscription_id,))
    return cancelled


def _update(
    connection: sqlite3.Connection,
    table: str,
    row_id: str,
    values: dict[str, Any],
    now_us: int,
) -> None:
    # Column names come from fixed tuples in this module, never from the request.
    assignments = "".join(f"{name} = ?, " for name in values)
    connection.execute(
        f"UPDATE {table} SET {assignments}updated_us = ? WHERE id = ?",
        (*values.values(), now_us, row_id),
    )


def _require(
    connection: sqlite3.Connection, company_id: str, subscription_id: str
) -> SubscriptionRow:
    subscription = get_subscription(connection, company_id, subscription_id)
    if subscription is None:
        raise LookupError(subscription_id)
    return subscription
