"""Helpers for security tests: a stub resolver, attempt rows and table calls."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult


class StubResolver(AbstractResolver):
    """Resolve names from a fixed table, never through real DNS.

    Each name maps to one address list per call, and the last list repeats,
    so [["127.0.0.1"], ["::1"]] rebinds on the second lookup.
    """

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self._answers = answers
        self.calls: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        sequence = self._answers.get(host)
        if sequence is None:
            raise socket.gaierror(socket.EAI_NONAME, f"stub resolver has no {host!r}")
        call = sum(1 for name in self.calls if name == host)
        self.calls.append(host)
        addresses = sequence[min(call, len(sequence) - 1)]
        return [_result(host, address, port) for address in addresses]

    async def close(self) -> None:
        return None


def _result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "hostname": host,
        "host": address,
        "port": port,
        "family": family,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    }


@dataclass(frozen=True)
class AttemptRow:
    delivery_id: str
    number: int
    duration_ms: int | None
    status_code: int | None
    error_kind: str | None
    response_excerpt: str | None
    outcome: str | None


async def attempt_rows(lassod: Any) -> list[AttemptRow]:
    """Return every stored attempt, oldest first."""

    def query(connection: Any) -> list[AttemptRow]:
        rows = connection.execute(
            "SELECT delivery_id, number, duration_ms, status_code, error_kind,"
            " response_excerpt, outcome FROM attempts ORDER BY started_ms, number"
        ).fetchall()
        return [AttemptRow(*row) for row in rows]

    return await lassod.daemon.database.read(query)


async def create_table(lassod: Any, key: str, **fields: Any) -> tuple[int, Any]:
    body = {"name": "Invoices", "schema_id": "sch_1", "source_text": "text"}
    body.update(fields)
    return await lassod.request("POST", "/api/v1/tables", key, json=body)


async def complete_table(lassod: Any, key: str, table_id: str) -> None:
    status, body = await lassod.request(
        "POST", f"/api/v1/tables/{table_id}/status", key, json={"status": "completed"}
    )
    assert status == 200, body


async def webhook_status(lassod: Any, key: str, table_id: str) -> str:
    _, body = await lassod.request("GET", f"/api/v1/tables/{table_id}", key)
    return body["webhook_status"]
