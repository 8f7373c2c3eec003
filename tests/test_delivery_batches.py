"""Batch statements of the delivery store, on a real SQLite file."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from lassod.store import Database
from lassod.store import deliveries as queries
from lassod.store.deliveries import AttemptOutcome
from lassod.store.endpoints import EndpointSettings, save_endpoint
from lassod.store.keys import ensure_company

BODY = '{"event":"test.event","data":{"text":"caf\\u00e9 \\"quoted\\" \\\\ \\u2028"}}'.encode()


def seed(connection: sqlite3.Connection, count: int, due_ms: int) -> list[str]:
    company_id = ensure_company(connection, "acme", 1)
    save_endpoint(
        connection,
        "ep_1",
        company_id,
        "subscription",
        EndpointSettings("http://127.0.0.1:9/hook", "whsec_1", None, None, None, None),
        1,
    )
    queued = [
        queries.emit_event(connection, company_id, "test.event", BODY, ["ep_1"], due_ms)[0]
        for _ in range(count)
    ]
    return [item.delivery_id for item in queued]


def outcome(job, attempt_outcome: str, status: str, next_due_ms=None) -> AttemptOutcome:
    return AttemptOutcome(
        delivery_id=job.delivery_id,
        number=job.number,
        duration_ms=7,
        status_code=204 if attempt_outcome == "succeeded" else 500,
        error_kind=None,
        response_excerpt="réponse \u2028 \"x\"",
        attempt_outcome=attempt_outcome,
        delivery_status=status,
        next_due_ms=next_due_ms,
        endpoint_id=job.endpoint_id,
        started_ms=job.started_ms,
    )


@pytest.fixture
async def database(tmp_path):
    opened = await Database.open(str(tmp_path / "batch.db"))
    yield opened
    await opened.close()


async def test_begin_keeps_order_and_exact_body(database):
    ids = await database.transaction(seed, 3, 1_000)
    requested = [ids[2], ids[0], "dlv_missing", ids[2]]

    jobs = await database.transaction(queries.begin_attempts, requested, 2_000)

    assert [job.delivery_id for job in jobs] == [ids[2], ids[0]]
    assert all(job.body == BODY for job in jobs)
    assert [job.number for job in jobs] == [1, 1]
    assert jobs[0].secret == "whsec_1"
    rows = await database.read(
        lambda connection: connection.execute(
            "SELECT id, attempt_count, next_due_ms, last_attempt_ms FROM deliveries"
            " ORDER BY id"
        ).fetchall()
    )
    started = {row[0]: tuple(row[1:]) for row in rows}
    assert started[ids[0]] == started[ids[2]] == (1, None, 2_000)
    assert started[ids[1]] == (0, 1_000, None)


async def test_outcomes_update_each_row_once(database):
    ids = await database.transaction(seed, 3, 1_000)
    jobs = await database.transaction(queries.begin_attempts, ids, 2_000)
    first, second, third = jobs
    batch = [
        outcome(first, "succeeded", "succeeded"),
        outcome(second, "failed", "pending", next_due_ms=9_000),
        outcome(third, "failed", "pending", next_due_ms=9_000),
        # A later outcome of the same delivery wins, as it would row by row.
        replace(outcome(third, "failed", "abandoned"), reason="all attempts failed"),
    ]

    await database.transaction(queries.record_outcomes, batch, 3_000)

    def read(connection: sqlite3.Connection):
        deliveries = connection.execute(
            "SELECT id, status, next_due_ms, reason, updated_ms FROM deliveries"
        ).fetchall()
        attempts = connection.execute(
            "SELECT delivery_id, duration_ms, status_code, response_excerpt, outcome"
            " FROM attempts"
        ).fetchall()
        streak = connection.execute(
            "SELECT failing_since_ms FROM endpoints WHERE id = 'ep_1'"
        ).fetchone()[0]
        return (
            {row[0]: tuple(row[1:]) for row in deliveries},
            {row[0]: tuple(row[1:]) for row in attempts},
            streak,
        )

    deliveries, attempts, streak = await database.read(read)
    assert deliveries[first.delivery_id] == ("succeeded", None, None, 3_000)
    assert deliveries[second.delivery_id] == ("pending", 9_000, None, 3_000)
    assert deliveries[third.delivery_id] == ("abandoned", None, "all attempts failed", 3_000)
    assert attempts[first.delivery_id] == (7, 204, "réponse \u2028 \"x\"", "succeeded")
    assert attempts[third.delivery_id][3] == "failed"
    # The success cleared no streak (none ran); the first failure started one.
    assert streak == second.started_ms


def delivery_state(connection: sqlite3.Connection) -> tuple[str, str | None]:
    row = connection.execute("SELECT status, reason FROM deliveries").fetchone()
    return row[0], row[1]


@pytest.mark.parametrize(
    ("attempt_outcome", "delivery_status", "expected"),
    [
        ("failed", "pending", ("cancelled", "endpoint was removed")),
        ("succeeded", "succeeded", ("succeeded", None)),
    ],
    ids=["failed attempt", "succeeded attempt"],
)
async def test_cancel_during_attempt(
    database, attempt_outcome, delivery_status, expected
):
    ids = await database.transaction(seed, 1, 1_000)
    [job] = await database.transaction(queries.begin_attempts, ids, 2_000)
    await database.transaction(
        queries.cancel_pending_for_endpoint, "ep_1", "endpoint was removed", 2_500
    )

    result = outcome(job, attempt_outcome, delivery_status, next_due_ms=9_000)
    await database.transaction(queries.record_outcomes, [result], 3_000)

    assert await database.read(delivery_state) == expected


async def test_stale_success_leaves_cancelled(database):
    """Only the delivery's latest attempt can turn a cancelled delivery into succeeded."""
    ids = await database.transaction(seed, 1, 1_000)
    [first] = await database.transaction(queries.begin_attempts, ids, 2_000)
    await database.transaction(
        queries.record_outcomes, [outcome(first, "failed", "pending", 2_100)], 2_050
    )
    [second] = await database.transaction(queries.begin_attempts, ids, 2_200)
    await database.transaction(
        queries.cancel_pending_for_endpoint, "ep_1", "endpoint was removed", 2_500
    )

    # An outcome of the first attempt arriving again must not count.
    stale = outcome(first, "succeeded", "succeeded")
    await database.transaction(queries.record_outcomes, [stale], 3_000)

    assert second.number == 2
    assert await database.read(delivery_state) == ("cancelled", "endpoint was removed")


async def test_pending_due_after_pages_in_order(database):
    await database.transaction(seed, 7, 1_000)
    await database.transaction(seed, 5, 500)

    pages = []
    after = (0, "")
    while True:
        page = await database.read(queries.pending_due_after, after, 2_000, 4)
        pages.append(page)
        if len(page) < 4:
            break
        after = (page[-1].due_ms, page[-1].delivery_id)

    found = [(item.due_ms, item.delivery_id) for page in pages for item in page]
    assert len(found) == 12
    assert found == sorted(found)
    assert all(item.url == "http://127.0.0.1:9/hook" for page in pages for item in page)


async def test_body_bytes_survive_any_encoding(database):
    """Bodies that are not UTF-8 (written by another tool, say) still go out unchanged."""
    ids = await database.transaction(seed, 1, 1_000)
    raw = b'{"event":"test.event","data":"\xff\xfe\x00 latin-1 \xe9"}'
    await database.transaction(
        lambda connection: connection.execute("UPDATE events SET body = ?", (raw,))
    )

    [job] = await database.transaction(queries.begin_attempts, ids, 2_000)

    assert job.body == raw


def limit_string_length(connection: sqlite3.Connection, limit: int) -> None:
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)


def seed_large(connection: sqlite3.Connection, events: int, endpoints: int) -> list[str]:
    """Store `events` events of 300 KB, each for `endpoints` endpoints."""
    company_id = ensure_company(connection, "acme", 1)
    endpoint_ids = [f"ep_{number}" for number in range(endpoints)]
    for endpoint_id in endpoint_ids:
        settings = EndpointSettings("http://127.0.0.1:9/hook", None, None, None, None, None)
        save_endpoint(connection, endpoint_id, company_id, "subscription", settings, 1)
    ids = []
    for number in range(events):
        body = b'{"event":"test.event","data":"' + bytes([65 + number]) * 300_000 + b'"}'
        queued = queries.emit_event(
            connection, company_id, "test.event", body, endpoint_ids, 1_000
        )
        ids.extend(item.delivery_id for item in queued)
    return ids


async def test_large_bodies_stay_under_the_string_limit(database, monkeypatch):
    """A batch of large bodies must not exceed SQLite's longest string."""
    monkeypatch.setattr(queries, "BODY_CHUNK_BYTES", 500_000)
    await database.read(limit_string_length, 2_000_000)
    ids = await database.transaction(seed_large, 4, 5)

    jobs = await database.transaction(queries.begin_attempts, ids, 2_000)

    assert len(jobs) == 20
    assert {len(job.body) for job in jobs} == {300_000 + len('{"event":"test.event","data":""}')}
    assert len({job.body for job in jobs}) == 4


async def test_first_final_outcome_wins(database):
    ids = await database.transaction(seed, 1, 1_000)
    [job] = await database.transaction(queries.begin_attempts, ids, 2_000)
    batch = [
        outcome(job, "succeeded", "succeeded"),
        outcome(job, "failed", "pending", next_due_ms=9_000),
    ]

    await database.transaction(queries.record_outcomes, batch, 3_000)

    row = await database.read(
        lambda connection: connection.execute(
            "SELECT status, next_due_ms FROM deliveries"
        ).fetchone()
    )
    assert tuple(row) == ("succeeded", None)


async def test_excerpt_keeps_text_after_nul(database):
    ids = await database.transaction(seed, 1, 1_000)
    [job] = await database.transaction(queries.begin_attempts, ids, 2_000)
    failed = replace(outcome(job, "failed", "pending", 9_000), response_excerpt="ab\x00cd")

    await database.transaction(queries.record_outcomes, [failed], 3_000)

    excerpt = await database.read(
        lambda connection: connection.execute(
            "SELECT response_excerpt FROM attempts"
        ).fetchone()[0]
    )
    assert excerpt == "ab\ufffdcd"


async def test_take_back_restores_the_previous_attempt(database):
    ids = await database.transaction(seed, 1, 1_000)
    [first] = await database.transaction(queries.begin_attempts, ids, 2_000)
    retry = outcome(first, "failed", "pending", next_due_ms=2_500)
    await database.transaction(queries.record_outcomes, [retry], 2_100)
    [second] = await database.transaction(queries.begin_attempts, ids, 3_000)

    await database.transaction(queries.take_back_attempts, [second], 4_000)

    def read(connection: sqlite3.Connection):
        delivery = connection.execute(
            "SELECT status, attempt_count, next_due_ms, last_attempt_ms FROM deliveries"
        ).fetchone()
        numbers = [row[0] for row in connection.execute("SELECT number FROM attempts")]
        return tuple(delivery), numbers

    delivery, numbers = await database.read(read)
    assert second.number == 2
    assert delivery == ("pending", 1, 4_000, 2_000)
    assert numbers == [1]


async def test_take_back_after_cancel_keeps_cancelled(database):
    ids = await database.transaction(seed, 1, 1_000)
    [job] = await database.transaction(queries.begin_attempts, ids, 2_000)
    await database.transaction(
        queries.cancel_pending_for_endpoint, job.endpoint_id, "removed", 2_500
    )

    await database.transaction(queries.take_back_attempts, [job], 3_000)

    row = await database.read(
        lambda connection: connection.execute(
            "SELECT status, attempt_count, next_due_ms, last_attempt_ms FROM deliveries"
        ).fetchone()
    )
    attempts = await database.read(
        lambda connection: connection.execute("SELECT COUNT(*) FROM attempts").fetchone()
    )
    assert tuple(row) == ("cancelled", 0, None, None)
    assert attempts[0] == 0
