"""Queries for the attribute dictionary; every change emits its catalog events."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from lassod.catalog import attributes, events, write_time_us
from lassod.catalog.attributes import AttributeInput, AttributeRow
from lassod.ids import new_uuid
from lassod.store import products as product_queries
from lassod.store.deliveries import QueuedDelivery
from lassod.store.subscriptions import emit_catalog_event

_SELECT = (
    "SELECT id, company_id, key, label, type, enum_values, tags_values, description,"
    " is_reviewed, created_us, updated_us FROM attributes"
)


@dataclass(frozen=True)
class AttributeChange:
    """The result of a write: created, updated or unchanged, and its deliveries."""

    result: str
    attribute: AttributeRow
    queued: list[QueuedDelivery]


class KeyTaken(Exception):
    """A rename's new key already names another attribute."""


def _row(row: sqlite3.Row | tuple) -> AttributeRow:
    return AttributeRow(
        id=row[0],
        company_id=row[1],
        key=row[2],
        label=row[3],
        type=row[4],
        enum_values=_tuple(row[5]),
        tags_values=_tuple(row[6]),
        description=row[7],
        is_reviewed=bool(row[8]),
        created_us=row[9],
        updated_us=row[10],
    )


def get_attribute(
    connection: sqlite3.Connection, company_id: str, key: str
) -> AttributeRow | None:
    row = connection.execute(
        _SELECT + " WHERE company_id = ? AND key = ?", (company_id, key)
    ).fetchone()
    return None if row is None else _row(row)


def list_attributes(
    connection: sqlite3.Connection, company_id: str, offset: int, limit: int
) -> tuple[list[AttributeRow], int]:
    """Return one page of a company's attributes in key order, and the total."""
    total = connection.execute(
        "SELECT COUNT(*) FROM attributes WHERE company_id = ?", (company_id,)
    ).fetchone()[0]
    rows = connection.execute(
        _SELECT + " WHERE company_id = ? ORDER BY key LIMIT ? OFFSET ?",
        (company_id, limit, offset),
    ).fetchall()
    return [_row(row) for row in rows], total


def upsert_attribute(
    connection: sqlite3.Connection, company_id: str, attribute: AttributeInput
) -> AttributeChange:
    """Create the attribute, or update the one with its key; raises ValidationError."""
    current = get_attribute(connection, company_id, attribute.key)
    if current is None:
        return _insert(connection, company_id, attributes.new_state(attribute))
    return _apply(connection, current, attributes.merged_state(current, attribute))


def upsert_attributes(
    connection: sqlite3.Connection, company_id: str, items: list[AttributeInput]
) -> list[AttributeChange]:
    """Upsert every item or, on the first invalid one, raise and roll back all."""
    changes = []
    for index, item in enumerate(items):
        with attributes.field_prefix(f"attributes[{index}]"):
            changes.append(upsert_attribute(connection, company_id, item))
    return changes


def update_attribute(
    connection: sqlite3.Connection, company_id: str, attribute: AttributeInput
) -> AttributeChange | None:
    """Apply a PUT to an existing attribute; None when the key is unknown."""
    current = get_attribute(connection, company_id, attribute.key)
    if current is None:
        return None
    return _apply(connection, current, attributes.merged_state(current, attribute))


def rename_attribute(
    connection: sqlite3.Connection, company_id: str, key: str, new_key: str
) -> AttributeChange | None:
    """Rename an attribute and move product values to the new key.

    Emits attribute.updated with previous_key, then product.updated for each
    product whose values moved. Raises KeyTaken when new_key is in use.
    """
    current = get_attribute(connection, company_id, key)
    if current is None:
        return None
    if new_key == key:
        return AttributeChange("unchanged", current, [])
    if get_attribute(connection, company_id, new_key) is not None:
        raise KeyTaken(new_key)
    updated_us = write_time_us(current.updated_us)
    connection.execute(
        "UPDATE attributes SET key = ?, updated_us = ? WHERE id = ?",
        (new_key, updated_us, current.id),
    )
    renamed = attributes.with_state(current, {"key": new_key}, updated_us)
    data = events.attribute_data(renamed, previous_key=key)
    queued = emit_catalog_event(
        connection, company_id, events.ATTRIBUTE_UPDATED, data, updated_us
    )
    queued += product_queries.move_attribute_values(
        connection, company_id, key, new_key
    )
    return AttributeChange("updated", renamed, queued)


def delete_attribute(
    connection: sqlite3.Connection, company_id: str, key: str
) -> AttributeChange | None:
    """Delete an attribute and remove its values from every product."""
    current = get_attribute(connection, company_id, key)
    if current is None:
        return None
    connection.execute("DELETE FROM attributes WHERE id = ?", (current.id,))
    data = events.attribute_data(current)
    queued = emit_catalog_event(
        connection, company_id, events.ATTRIBUTE_DELETED, data, write_time_us()
    )
    queued += product_queries.move_attribute_values(connection, company_id, key, None)
    return AttributeChange("deleted", current, queued)


def _insert(
    connection: sqlite3.Connection, company_id: str, state: dict[str, Any]
) -> AttributeChange:
    attribute_id = new_uuid()
    now = write_time_us()
    connection.execute(
        "INSERT INTO attributes (id, company_id, key, label, type, enum_values,"
        " tags_values, description, is_reviewed, created_us, updated_us)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (attribute_id, company_id, *_columns(state), now, now),
    )
    created = AttributeRow(
        id=attribute_id, company_id=company_id, **state, created_us=now, updated_us=now
    )
    data = events.attribute_data(created)
    queued = emit_catalog_event(
        connection, company_id, events.ATTRIBUTE_CREATED, data, now
    )
    return AttributeChange("created", created, queued)


def _apply(
    connection: sqlite3.Connection, current: AttributeRow, state: dict[str, Any]
) -> AttributeChange:
    if not attributes.differs(current, state):
        return AttributeChange("unchanged", current, [])
    updated_us = write_time_us(current.updated_us)
    connection.execute(
        "UPDATE attributes SET key = ?, label = ?, type = ?, enum_values = ?,"
        " tags_values = ?, description = ?, is_reviewed = ?, updated_us = ? WHERE id = ?",
        (*_columns(state), updated_us, current.id),
    )
    updated = attributes.with_state(current, state, updated_us)
    data = events.attribute_data(updated)
    queued = emit_catalog_event(
        connection, current.company_id, events.ATTRIBUTE_UPDATED, data, updated_us
    )
    return AttributeChange("updated", updated, queued)


def _columns(state: dict[str, Any]) -> tuple[Any, ...]:
    return (
        state["key"],
        state["label"],
        state["type"],
        _json_or_none(state["enum_values"]),
        _json_or_none(state["tags_values"]),
        state["description"],
        int(state["is_reviewed"]),
    )


def _json_or_none(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else orjson.dumps(list(values)).decode()


def _tuple(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(orjson.loads(text))
