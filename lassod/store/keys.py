"""Queries for companies and API keys."""

from __future__ import annotations

import hmac
import sqlite3
from dataclasses import dataclass

from lassod.ids import new_id


@dataclass(frozen=True)
class ApiKeyRow:
    id: str
    company_id: str
    company_name: str
    key_prefix: str
    created_us: int
    revoked_us: int | None


def ensure_company(connection: sqlite3.Connection, name: str, now_us: int) -> str:
    """Return the id of the company with this name, creating it if needed."""
    row = connection.execute("SELECT id FROM companies WHERE name = ?", (name,)).fetchone()
    if row is not None:
        return row[0]
    company_id = new_id("cmp")
    connection.execute(
        "INSERT INTO companies (id, name, created_us) VALUES (?, ?, ?)",
        (company_id, name, now_us),
    )
    return company_id


def company_names(connection: sqlite3.Connection) -> dict[str, str]:
    """Return every company's name by its id."""
    rows = connection.execute("SELECT id, name FROM companies").fetchall()
    return {row[0]: row[1] for row in rows}


def insert_api_key(
    connection: sqlite3.Connection,
    company_name: str,
    key_hash: str,
    key_prefix: str,
    now_us: int,
) -> str:
    company_id = ensure_company(connection, company_name, now_us)
    key_id = new_id("key")
    connection.execute(
        "INSERT INTO api_keys (id, company_id, key_hash, key_prefix, created_us)"
        " VALUES (?, ?, ?, ?, ?)",
        (key_id, company_id, key_hash, key_prefix, now_us),
    )
    return key_id


def company_for_key_hash(connection: sqlite3.Connection, key_hash: str) -> str | None:
    """Return the company id of an unrevoked key with this hash, else None."""
    row = connection.execute(
        "SELECT key_hash, company_id FROM api_keys"
        " WHERE key_hash = ? AND revoked_us IS NULL",
        (key_hash,),
    ).fetchone()
    if row is None or not hmac.compare_digest(row[0], key_hash):
        return None
    return row[1]


def list_api_keys(connection: sqlite3.Connection) -> list[ApiKeyRow]:
    rows = connection.execute(
        "SELECT k.id, k.company_id, c.name, k.key_prefix, k.created_us, k.revoked_us"
        " FROM api_keys k JOIN companies c ON c.id = k.company_id"
        " ORDER BY k.created_us"
    ).fetchall()
    return [ApiKeyRow(*row) for row in rows]


def revoke_api_key(connection: sqlite3.Connection, key_id: str, now_us: int) -> bool:
    cursor = connection.execute(
        "UPDATE api_keys SET revoked_us = ? WHERE id = ? AND revoked_us IS NULL",
        (now_us, key_id),
    )
    return cursor.rowcount == 1
