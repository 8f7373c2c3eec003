"""Queries for events, deliveries and attempts: the delivery engine's storage."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Iterable

import orjson

from lassod.ids import new_ordered_id, new_uuid
from lassod.store import endpoints
from lassod.store.endpoints import Deactivation


@dataclass(frozen=True)
class QueuedDelivery:
    """A pending delivery's place in the scheduler's queue.

    url and company_id are its endpoint's URL and its company when the query
    that found it read them, so the scheduler can apply its per-host and
    per-company limits without asking the database again.
    """

    due_ms: int
    delivery_id: str
    url: str | None = None
    company_id: str | None = None


# AttemptJob, AttemptOutcome and AttemptResult are built once per attempt
# and not frozen: a frozen dataclass sets each field through
# object.__setattr__, which nearly triples the cost of building one.
@dataclass(slots=True)
class AttemptJob:
    """Everything one attempt needs, read when the attempt starts."""

    delivery_id: str
    company_id: str
    endpoint_id: str
    endpoint_kind: str
    event_id: str
    event_name: str
    body: bytes
    number: int
    attempt_id: str
    started_ms: int
    url: str
    # Kept out of repr so that no log line or traceback shows them.
    secret: str | None = field(repr=False)
    previous_secret: str | None = field(repr=False)
    auth_header_name: str | None
    auth_header_value: str | None = field(repr=False)
    endpoint_failing_since_ms: int | None = None


@dataclass(slots=True)
class AttemptOutcome:
    """The stored result of one attempt and the delivery state it leads to.

    attempt_outcome is succeeded, failed or interrupted; delivery_status is
    pending (with next_due_ms), succeeded or abandoned. With endpoint_id set,
    the outcome also moves the endpoint's failure streak, and
    deactivate_reason deactivates a subscription endpoint: always, or only
    while its streak began at or before deactivate_if_failing_since_ms.
    """

    delivery_id: str
    number: int
    duration_ms: int | None
    status_code: int | None
    error_kind: str | None
    response_excerpt: str | None
    attempt_outcome: str
    delivery_status: str
    next_due_ms: int | None
    reason: str | None = None
    endpoint_id: str | None = None
    started_ms: int | None = None
    deactivate_reason: str | None = None
    deactivate_if_failing_since_ms: int | None = None


@dataclass(frozen=True)
class UnfinishedAttempt:
    delivery_id: str
    number: int
    started_ms: int
    event_name: str


def insert_event(
    connection: sqlite3.Connection, company_id: str, name: str, body: bytes, created_ms: int
) -> str:
    event_id = new_ordered_id("evt")
    connection.execute(
        "INSERT INTO events (id, company_id, name, body, created_ms) VALUES (?, ?, ?, ?, ?)",
        (event_id, company_id, name, body, created_ms),
    )
    return event_id


def insert_delivery(
    connection: sqlite3.Connection,
    event_id: str,
    company_id: str,
    endpoint_id: str,
    due_ms: int,
    redelivery_of: str | None = None,
) -> QueuedDelivery:
    delivery_id = new_ordered_id("dlv")
    connection.execute(
        "INSERT INTO deliveries (id, event_id, company_id, endpoint_id, status,"
        " next_due_ms, created_ms, updated_ms, redelivery_of)"
        " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
        (
            delivery_id,
            event_id,
            company_id,
            endpoint_id,
            due_ms,
            due_ms,
            due_ms,
            redelivery_of,
        ),
    )
    row = connection.execute(
        "SELECT url FROM endpoints WHERE id = ?", (endpoint_id,)
    ).fetchone()
    url = None if row is None else row[0]
    return QueuedDelivery(due_ms, delivery_id, url, company_id)


def pending_due_after(
    connection: sqlite3.Connection,
    after: tuple[int, str],
    until_ms: int,
    limit: int,
) -> list[QueuedDelivery]:
    """List pending deliveries after `after` = (due_ms, id), due by until_ms.

    Deliveries with an attempt in flight have no due time and are skipped.
    """
    rows = _json_result(
        connection,
        "SELECT json_group_array(json_array(next_due_ms, id, url, company_id)) FROM ("
        " SELECT d.next_due_ms, d.id, p.url, d.company_id FROM deliveries d"
        " LEFT JOIN endpoints p ON p.id = d.endpoint_id"
        " WHERE d.status = 'pending' AND d.next_due_ms <= ?"
        " AND (d.next_due_ms > ? OR (d.next_due_ms = ? AND d.id > ?))"
        " ORDER BY d.next_due_ms, d.id LIMIT ?)",
        (until_ms, after[0], after[0], after[1], limit),
    )
    # SQLite does not guarantee an aggregate's order, and callers rely on it.
    rows.sort()
    return [QueuedDelivery(row[0], row[1], row[2], row[3]) for row in rows]


def data_version(connection: sqlite3.Connection) -> int:
    """Return SQLite's data_version, which changes when another connection commits."""
    return connection.execute("PRAGMA data_version").fetchone()[0]


def delivery_targets(
    connection: sqlite3.Connection, delivery_ids: list[str]
) -> dict[str, tuple[str, str]]:
    """Return (endpoint URL, company id) of each pending delivery, keyed by its id."""
    targets = {}
    for start in range(0, len(delivery_ids), BEGIN_CHUNK):
        chunk = delivery_ids[start : start + BEGIN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = connection.execute(
            "SELECT d.id, p.url, d.company_id FROM deliveries d"
            " JOIN endpoints p ON p.id = d.endpoint_id"
            f" WHERE d.id IN ({marks}) AND d.status = 'pending'",
            chunk,
        ).fetchall()
        targets.update((row[0], (row[1], row[2])) for row in rows)
    return targets


# Deliveries read per SELECT in delivery_targets, far below SQLite's limit of
# 32,766 bound parameters (SQLite 3.32 and later).
BEGIN_CHUNK = 500

_ATTEMPT_SOURCE = (
    "SELECT json_group_array(json_array("
    " d.id, d.company_id, d.endpoint_id, d.attempt_count, e.id, e.name,"
    " length(e.body), p.kind, p.url, p.secret, p.previous_secret,"
    " p.previous_secret_until_ms, p.auth_header_name, p.auth_header_value,"
    " p.id IS NOT NULL, p.active, p.failing_since_ms))"
    " FROM deliveries d JOIN events e ON e.id = d.event_id"
    " LEFT JOIN endpoints p ON p.id = d.endpoint_id"
    " WHERE d.status = 'pending' AND d.next_due_ms IS NOT NULL"
    " AND d.id IN (SELECT value FROM json_each(?))"
)
# Event bytes read per statement. A body travels as hex inside one JSON
# value, and SQLite caps a string at 1e9 bytes (SQLITE_MAX_LENGTH) by
# default, so large bodies are read a few at a time.
BODY_CHUNK_BYTES = 4 * 1024 * 1024


def begin_attempts(
    connection: sqlite3.Connection, delivery_ids: Iterable[str], now_ms: int
) -> list[AttemptJob]:
    """Record the start of one attempt for each delivery still pending.

    The attempt row is committed before the request is sent, so a crash
    mid-request leaves evidence that the attempt happened. Jobs come back in
    the order of delivery_ids; deliveries no longer pending are skipped. A
    delivery whose endpoint was removed is cancelled, and one whose endpoint
    is inactive is abandoned, instead of being sent.

    Each statement covers the whole batch (see _json_result).
    """
    # A repeated id would otherwise get two attempt rows with one number.
    delivery_ids = list(dict.fromkeys(delivery_ids))
    open_rows: dict[str, list] = {}
    closed = []
    for row in _json_result(connection, _ATTEMPT_SOURCE, (_json(delivery_ids),)):
        if not row[14]:
            closed.append(("cancelled", "endpoint was removed", now_ms, row[0]))
        elif not row[15]:
            closed.append(("abandoned", "endpoint is inactive", now_ms, row[0]))
        else:
            open_rows[row[0]] = row
    bodies = _event_bodies(connection, {row[4]: row[6] for row in open_rows.values()})
    found = {
        delivery_id: _attempt_job(row, bodies[row[4]], now_ms)
        for delivery_id, row in open_rows.items()
    }
    connection.executemany(
        "UPDATE deliveries SET status = ?, next_due_ms = NULL, reason = ?,"
        " updated_ms = ? WHERE id = ?",
        closed,
    )
    jobs = [found[delivery_id] for delivery_id in delivery_ids if delivery_id in found]
    if not jobs:
        return jobs
    connection.execute(
        "INSERT INTO attempts (delivery_id, number, attempt_id, started_ms)"
        " SELECT value ->> 0, value ->> 1, value ->> 2, ? FROM json_each(?)",
        (now_ms, _json([(job.delivery_id, job.number, job.attempt_id) for job in jobs])),
    )
    # attempt_count + 1 is each job's number: both read in this transaction.
    connection.execute(
        "UPDATE deliveries SET attempt_count = attempt_count + 1, next_due_ms = NULL,"
        " last_attempt_ms = ?, updated_ms = ? WHERE id IN (SELECT value FROM json_each(?))",
        (now_ms, now_ms, _json([job.delivery_id for job in jobs])),
    )
    return jobs


def _event_bodies(connection: sqlite3.Connection, sizes: dict[str, int]) -> dict[str, bytes]:
    """Read the bodies of events, given their sizes, in chunks of BODY_CHUNK_BYTES."""
    bodies: dict[str, bytes] = {}
    chunk: list[str] = []
    chunk_bytes = 0
    for event_id, size in sizes.items():
        if chunk and chunk_bytes + size > BODY_CHUNK_BYTES:
            bodies.update(_read_bodies(connection, chunk))
            chunk, chunk_bytes = [], 0
        chunk.append(event_id)
        chunk_bytes += size
    if chunk:
        bodies.update(_read_bodies(connection, chunk))
    return bodies


def _read_bodies(connection: sqlite3.Connection, event_ids: list[str]) -> dict[str, bytes]:
    # In hex, so that any stored bytes survive the trip through JSON.
    rows = _json_result(
        connection,
        "SELECT json_group_array(json_array(id, hex(body))) FROM events"
        " WHERE id IN (SELECT value FROM json_each(?))",
        (_json(event_ids),),
    )
    return {row[0]: bytes.fromhex(row[1]) for row in rows}


def _attempt_job(row: list, body: bytes, now_ms: int) -> AttemptJob:
    until_ms = row[11]
    previous_secret = row[10] if until_ms is not None and until_ms > now_ms else None
    return AttemptJob(
        delivery_id=row[0],
        company_id=row[1],
        endpoint_id=row[2],
        endpoint_kind=row[7],
        event_id=row[4],
        event_name=row[5],
        body=body,
        number=row[3] + 1,
        attempt_id=new_uuid(),
        started_ms=now_ms,
        url=row[8],
        secret=row[9],
        previous_secret=previous_secret,
        auth_header_name=row[12],
        auth_header_value=row[13],
        endpoint_failing_since_ms=row[16],
    )


def record_outcomes(
    connection: sqlite3.Connection, outcomes: Iterable[AttemptOutcome], now_ms: int
) -> list[Deactivation]:
    """Store attempt results and move each delivery to its next state.

    A delivery cancelled or abandoned while its attempt was in flight keeps
    that state unless the attempt succeeded. The receiver then has the
    event, so the delivery becomes succeeded. Returns the endpoints that
    these outcomes deactivated. Each statement covers the whole batch (see
    _json_result).
    """
    outcomes = list(outcomes)
    if not outcomes:
        return []
    connection.execute(
        "UPDATE attempts SET duration_ms = v.value ->> 2, status_code = v.value ->> 3,"
        " error_kind = v.value ->> 4, response_excerpt = v.value ->> 5,"
        " outcome = v.value ->> 6 FROM json_each(?) AS v"
        " WHERE attempts.delivery_id = v.value ->> 0 AND attempts.number = v.value ->> 1",
        (
            _json(
                [
                    (
                        item.delivery_id,
                        item.number,
                        item.duration_ms,
                        item.status_code,
                        item.error_kind,
                        _without_nul(item.response_excerpt),
                        item.attempt_outcome,
                    )
                    for item in outcomes
                ]
            ),
        ),
    )
    latest = _final_outcomes(outcomes)
    connection.execute(
        "UPDATE deliveries SET status = v.value ->> 1, next_due_ms = v.value ->> 2,"
        " reason = v.value ->> 3, updated_ms = ? FROM json_each(?) AS v"
        " WHERE deliveries.id = v.value ->> 0 AND (deliveries.status = 'pending'"
        "  OR (v.value ->> 1 = 'succeeded'"
        "   AND deliveries.status IN ('cancelled', 'abandoned')"
        "   AND deliveries.attempt_count = v.value ->> 4))",
        (
            now_ms,
            _json(
                [
                    (
                        item.delivery_id,
                        item.delivery_status,
                        item.next_due_ms,
                        item.reason,
                        item.number,
                    )
                    for item in latest.values()
                ]
            ),
        ),
    )
    return endpoints.apply_outcomes(connection, outcomes, now_ms)


def _final_outcomes(outcomes: list[AttemptOutcome]) -> dict[str, AttemptOutcome]:
    """Return, per delivery, the outcome that one UPDATE each in order would leave.

    Those UPDATEs apply only while the delivery is pending, so the first
    outcome that ends it wins; otherwise the last one does.
    """
    final: dict[str, AttemptOutcome] = {}
    for item in outcomes:
        earlier = final.get(item.delivery_id)
        if earlier is None or earlier.delivery_status == "pending":
            final[item.delivery_id] = item
    return final


def _without_nul(text: str | None) -> str | None:
    # The ->> operator of SQLite 3.40 ends a string at an escaped NUL.
    if text is None or "\x00" not in text:
        return text
    return text.replace("\x00", "\ufffd")


def record_and_begin(
    connection: sqlite3.Connection,
    outcomes: list[AttemptOutcome],
    delivery_ids: list[str],
    now_ms: int,
) -> tuple[list[Deactivation], list[AttemptJob]]:
    """Store finished attempts, then start new ones, in the caller's transaction.

    Sharing one commit halves the commits (and fsyncs) of a busy scheduler,
    whose finished attempts free the slots the new ones take. Returns the
    endpoints the outcomes deactivated and the started jobs.
    """
    deactivated = record_outcomes(connection, outcomes, now_ms) if outcomes else []
    if not delivery_ids:
        return deactivated, []
    return deactivated, begin_attempts(connection, delivery_ids, now_ms)


def take_back_attempts(
    connection: sqlite3.Connection, jobs: list[AttemptJob], now_ms: int
) -> None:
    """Undo the starts of attempts whose requests were never sent.

    Deletes their attempt rows and gives each delivery the attempt count and
    last attempt time it had before. A delivery still pending becomes due
    now; one cancelled or abandoned in the meantime keeps that state.
    """
    if not jobs:
        return
    started = _json([(job.delivery_id, job.number) for job in jobs])
    connection.execute(
        "DELETE FROM attempts WHERE outcome IS NULL AND (delivery_id, number) IN"
        " (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
        (started,),
    )
    connection.execute(
        "UPDATE deliveries SET attempt_count = (v.value ->> 1) - 1,"
        " next_due_ms = CASE WHEN status = 'pending' THEN ? ELSE next_due_ms END,"
        " updated_ms = ?, last_attempt_ms = (SELECT MAX(a.started_ms) FROM attempts a"
        "  WHERE a.delivery_id = deliveries.id)"
        " FROM json_each(?) AS v WHERE deliveries.id = v.value ->> 0"
        " AND deliveries.attempt_count = v.value ->> 1",
        (now_ms, now_ms, started),
    )


def unfinished_attempts(connection: sqlite3.Connection) -> list[UnfinishedAttempt]:
    """List attempts that started but never recorded an outcome."""
    rows = connection.execute(
        "SELECT a.delivery_id, a.number, a.started_ms, coalesce(e.name, '')"
        " FROM attempts a LEFT JOIN deliveries d ON d.id = a.delivery_id"
        " LEFT JOIN events e ON e.id = d.event_id WHERE a.outcome IS NULL"
    ).fetchall()
    return [UnfinishedAttempt(*row) for row in rows]


def cancel_pending_for_endpoint(
    connection: sqlite3.Connection, endpoint_id: str, reason: str, now_ms: int
) -> int:
    cursor = connection.execute(
        "UPDATE deliveries SET status = 'cancelled', next_due_ms = NULL, reason = ?,"
        " updated_ms = ? WHERE endpoint_id = ? AND status = 'pending'",
        (reason, now_ms, endpoint_id),
    )
    return cursor.rowcount


def emit_event(
    connection: sqlite3.Connection,
    company_id: str,
    name: str,
    body: bytes,
    endpoint_ids: Iterable[str],
    now_ms: int,
) -> list[QueuedDelivery]:
    """Store an event and one delivery per endpoint, due now.

    Runs inside the caller's transaction, so the change that caused the event,
    the event and its deliveries commit or roll back together.
    """
    event_id = insert_event(connection, company_id, name, body, now_ms)
    return [
        insert_delivery(connection, event_id, company_id, endpoint_id, now_ms)
        for endpoint_id in endpoint_ids
    ]


@dataclass(frozen=True)
class Requeue:
    """The result of a redeliver or recover.

    result is queued, not_found (no such delivery), no_webhook (its table has
    no webhook_url), deleted (its subscription was deleted) or inactive (its
    subscription is deactivated).
    """

    result: str
    queued: list[QueuedDelivery]


def redeliver(
    connection: sqlite3.Connection,
    company_id: str | None,
    delivery_id: str,
    now_ms: int,
) -> Requeue:
    """Queue a new delivery of the same event to the same endpoint, due now.

    With a company id, another company's delivery is not found. The new
    delivery has a fresh retry schedule and names the original in
    redelivery_of.
    """
    row = connection.execute(
        "SELECT event_id, company_id, endpoint_id FROM deliveries"
        " WHERE id = ? AND (? IS NULL OR company_id = ?)",
        (delivery_id, company_id, company_id),
    ).fetchone()
    if row is None:
        return Requeue("not_found", [])
    state = endpoint_state(connection, row[2])
    if state != "active":
        return Requeue(state, [])
    queued = insert_delivery(connection, row[0], row[1], row[2], now_ms, delivery_id)
    return Requeue("queued", [queued])


def recover_abandoned(
    connection: sqlite3.Connection,
    endpoint_id: str,
    since_ms: int,
    until_ms: int | None,
    now_ms: int,
) -> Requeue:
    """Queue a new delivery for each event abandoned on this endpoint in the window.

    The window applies to the abandoned deliveries' creation times, since_ms
    inclusive and until_ms exclusive. An event that already has a pending or
    succeeded delivery to the endpoint is skipped, so a second recover of the
    same window queues nothing new.
    """
    state = endpoint_state(connection, endpoint_id)
    if state != "active":
        return Requeue(state, [])
    rows = connection.execute(
        "SELECT d.event_id, d.company_id, d.id FROM deliveries d"
        " WHERE d.endpoint_id = ? AND d.status = 'abandoned' AND d.created_ms >= ?"
        " AND (? IS NULL OR d.created_ms < ?)"
        " AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.event_id = d.event_id"
        "  AND o.endpoint_id = d.endpoint_id AND o.status IN ('pending', 'succeeded'))"
        " ORDER BY d.created_ms, d.rowid",
        (endpoint_id, since_ms, until_ms, until_ms),
    ).fetchall()
    # One new delivery per event, copying its latest abandoned delivery.
    latest = {row[0]: row for row in rows}
    queued = [
        insert_delivery(connection, event_id, company, endpoint_id, now_ms, original)
        for event_id, company, original in latest.values()
    ]
    return Requeue("queued", queued)


def endpoint_state(connection: sqlite3.Connection, endpoint_id: str) -> str:
    """Return active, inactive, no_webhook or deleted.

    A table's endpoint has the table's id, and tables are never deleted, so
    a missing endpoint is a table without a webhook_url or a deleted
    subscription.
    """
    row = connection.execute(
        "SELECT active FROM endpoints WHERE id = ?", (endpoint_id,)
    ).fetchone()
    if row is not None:
        return "active" if row[0] else "inactive"
    table = connection.execute(
        "SELECT 1 FROM tables WHERE id = ?", (endpoint_id,)
    ).fetchone()
    return "no_webhook" if table is not None else "deleted"


def count_pending(connection: sqlite3.Connection) -> int:
    """Count pending deliveries, including those with an attempt in flight."""
    # The condition matches the partial index deliveries_due, which SQLite
    # then counts instead of the table.
    row = connection.execute(
        "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"
    ).fetchone()
    return row[0]


def _json(values: list) -> str:
    return orjson.dumps(values).decode()


def _json_result(
    connection: sqlite3.Connection, sql: str, parameters: tuple
) -> list[list]:
    """Run a query that returns its rows as one JSON array, and parse it.

    sqlite3 lets other threads take the GIL during every step of a
    statement, that is once per row fetched or per set of executemany
    parameters. Taking it back can wait for the interpreter's switch
    interval (5 ms by default) while the event loop thread runs. Batch
    statements therefore read and write through one JSON value each, which
    costs one step whatever the batch size.
    """
    text = connection.execute(sql, parameters).fetchone()[0]
    return orjson.loads(text)
