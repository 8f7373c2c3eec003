"""Queries for webhook endpoints: settings, failure streaks and deactivation."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from lassod.store.deliveries import AttemptOutcome


@dataclass(frozen=True)
class EndpointRow:
    id: str
    company_id: str
    kind: str
    url: str
    secret: str | None
    previous_secret: str | None
    previous_secret_until_ms: int | None
    auth_header_name: str | None
    auth_header_value: str | None
    active: bool
    disabled_reason: str | None
    disabled_ms: int | None
    failing_since_ms: int | None


@dataclass(frozen=True)
class EndpointSettings:
    """Settings that a PATCH writes to an endpoint; None leaves a field empty."""

    url: str
    secret: str | None
    previous_secret: str | None
    previous_secret_until_ms: int | None
    auth_header_name: str | None
    auth_header_value: str | None


@dataclass(frozen=True)
class Deactivation:
    """A subscription endpoint that lassod deactivated, and why."""

    endpoint_id: str
    reason: str
    abandoned: int


def get_endpoint(
    connection: sqlite3.Connection, endpoint_id: str
) -> EndpointRow | None:
    row = connection.execute(
        "SELECT id, company_id, kind, url, secret, previous_secret,"
        " previous_secret_until_ms, auth_header_name, auth_header_value, active,"
        " disabled_reason, disabled_ms, failing_since_ms FROM endpoints WHERE id = ?",
        (endpoint_id,),
    ).fetchone()
    if row is None:
        return None
    values = list(row)
    values[9] = bool(values[9])
    return EndpointRow(*values)


def save_endpoint(
    connection: sqlite3.Connection,
    endpoint_id: str,
    company_id: str,
    kind: str,
    settings: EndpointSettings,
    now_us: int,
) -> None:
    """Insert the endpoint or replace its settings.

    A new URL clears the failure streak, since it names a different receiver.
    """
    connection.execute(
        "INSERT INTO endpoints (id, company_id, kind, url, secret, previous_secret,"
        " previous_secret_until_ms, auth_header_name, auth_header_value,"
        " created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET"
        " failing_since_ms = CASE WHEN url = excluded.url THEN failing_since_ms END,"
        " url = excluded.url, secret = excluded.secret,"
        " previous_secret = excluded.previous_secret,"
        " previous_secret_until_ms = excluded.previous_secret_until_ms,"
        " auth_header_name = excluded.auth_header_name,"
        " auth_header_value = excluded.auth_header_value,"
        " updated_us = excluded.updated_us",
        (
            endpoint_id,
            company_id,
            kind,
            settings.url,
            settings.secret,
            settings.previous_secret,
            settings.previous_secret_until_ms,
            settings.auth_header_name,
            settings.auth_header_value,
            now_us,
            now_us,
        ),
    )


def delete_endpoint(
    connection: sqlite3.Connection, endpoint_id: str, reason: str, now_ms: int
) -> int:
    """Delete the endpoint and cancel its pending deliveries; return how many."""
    cursor = connection.execute(
        "UPDATE deliveries SET status = 'cancelled', next_due_ms = NULL, reason = ?,"
        " updated_ms = ? WHERE endpoint_id = ? AND status = 'pending'",
        (reason, now_ms, endpoint_id),
    )
    connection.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))
    return cursor.rowcount


def apply_outcomes(
    connection: sqlite3.Connection, outcomes: Iterable[AttemptOutcome], now_ms: int
) -> list[Deactivation]:
    """Move failure streaks and deactivate endpoints as the outcomes require."""
    outcomes = [item for item in outcomes if item.endpoint_id is not None]
    # One statement per endpoint, not per outcome: a batch often contains
    # many outcomes of one endpoint. Successes clear a streak first, then the
    # first failure of each endpoint starts one if none is running.
    succeeded = {
        item.endpoint_id: None for item in outcomes if item.attempt_outcome == "succeeded"
    }
    connection.executemany(
        "UPDATE endpoints SET failing_since_ms = NULL"
        " WHERE id = ? AND failing_since_ms IS NOT NULL",
        [(endpoint_id,) for endpoint_id in succeeded],
    )
    first_failures: dict[str, int] = {}
    for item in outcomes:
        if item.attempt_outcome != "succeeded" and item.endpoint_id not in first_failures:
            first_failures[item.endpoint_id] = item.started_ms or now_ms
    connection.executemany(
        "UPDATE endpoints SET failing_since_ms = ?"
        " WHERE id = ? AND failing_since_ms IS NULL",
        [(since, endpoint_id) for endpoint_id, since in first_failures.items()],
    )

    deactivated = []
    for item in outcomes:
        if item.deactivate_reason is None:
            continue
        found = _deactivate(connection, item, item.deactivate_reason, now_ms)
        if found is not None:
            deactivated.append(found)
    return deactivated


def _deactivate(
    connection: sqlite3.Connection, item: AttemptOutcome, reason: str, now_ms: int
) -> Deactivation | None:
    # The outcome was decided from the streak read when the attempt began. A
    # success recorded since then resets the streak, so the guard re-checks it.
    since = item.deactivate_if_failing_since_ms
    cursor = connection.execute(
        "UPDATE endpoints SET active = 0, disabled_reason = ?, disabled_ms = ?,"
        " updated_us = ? WHERE id = ? AND kind = 'subscription' AND active = 1"
        " AND (? IS NULL OR failing_since_ms <= ?)",
        (reason, now_ms, now_ms * 1000, item.endpoint_id, since, since),
    )
    if cursor.rowcount != 1:
        return None
    abandoned = connection.execute(
        "UPDATE deliveries SET status = 'abandoned', next_due_ms = NULL, reason = ?,"
        " updated_ms = ? WHERE endpoint_id = ? AND status = 'pending'",
        ("subscription deactivated: " + reason, now_ms, item.endpoint_id),
    ).rowcount
    return Deactivation(item.endpoint_id, reason, abandoned)
