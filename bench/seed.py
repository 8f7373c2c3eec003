"""Seed a benchmark database through lassod's own store code.

Everything here runs before lassod starts, against the same SQLite file and
migrations the daemon uses.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from lassod import events
from lassod.clock import now_ms, now_us
from lassod.ids import hash_api_key, new_api_key
from lassod.store import Database
from lassod.store import keys as key_queries
from lassod.store import tables as table_queries
from lassod.store.deliveries import emit_event
from lassod.tables import NewTable

COMPANY = "bench"
SEED_CHUNK = 50_000


@dataclass(frozen=True)
class Seeded:
    """The contents of a seeded database: the API key and the endpoint ids."""

    api_key: str
    company_id: str
    endpoint_ids: list[str]


async def seed(
    path: str, urls: list[str], secret: str, events_due: list[int]
) -> Seeded:
    """Create a company, an API key, one table endpoint per URL and events.

    events_due contains one due time (Unix ms) per event; event i goes to
    endpoint i modulo the number of URLs.
    """
    database = await Database.open(path)
    try:
        api_key = new_api_key()
        company_id, endpoint_ids = await database.transaction(
            _company_and_endpoints, api_key, urls, secret
        )
        for start in range(0, len(events_due), SEED_CHUNK):
            chunk = events_due[start : start + SEED_CHUNK]
            await database.transaction(_emit, company_id, endpoint_ids, start, chunk)
        return Seeded(api_key, company_id, endpoint_ids)
    finally:
        await database.close()


def _company_and_endpoints(
    connection: sqlite3.Connection, api_key: str, urls: list[str], secret: str
) -> tuple[str, list[str]]:
    key_queries.insert_api_key(
        connection, COMPANY, hash_api_key(api_key), api_key[:10], now_us()
    )
    company_id = key_queries.ensure_company(connection, COMPANY, now_us())
    endpoint_ids = [
        table_queries.insert_table(
            connection, company_id, new_table(url, secret), now_us()
        ).id
        for url in urls
    ]
    return company_id, endpoint_ids


def new_table(url: str, secret: str, name: str = "bench") -> NewTable:
    return NewTable(
        name=name,
        schema_id="schema_bench",
        source={"source_text": "benchmark"},
        additional_context=None,
        webhook_url=url,
        webhook_secret=secret,
        auth_header_name=None,
        auth_header_value=None,
    )


def _emit(
    connection: sqlite3.Connection,
    company_id: str,
    endpoint_ids: list[str],
    offset: int,
    due_times: list[int],
) -> None:
    for index, due_ms in enumerate(due_times, start=offset):
        endpoint_id = endpoint_ids[index % len(endpoint_ids)]
        body = event_body(endpoint_id, index)
        emit_event(
            connection, company_id, events.TABLE_COMPLETED, body, [endpoint_id], due_ms
        )


def event_body(table_id: str, index: int) -> bytes:
    """Return a table.completed envelope like the ones lassod emits."""
    data = {"table_id": table_id, "status": "completed", "total_rows": index}
    return events.build_body(events.TABLE_COMPLETED, now_ms(), data)


async def seed_tables(path: str, url: str, secret: str, count: int) -> Seeded:
    """Create `count` queued tables with a webhook and no events."""
    return await seed(path, [url] * count, secret, [])
