"""The outcome recorder: a failed commit loses neither an attempt start nor an outcome."""

from __future__ import annotations

import sqlite3

import pytest

from lassod import recorder
from lassod.store import deliveries
from tests.conftest import eventually
from tests.delivery_helpers import complete, create_table


def fail_once(when):
    """Wrap record_and_begin so that its first call matching `when` raises."""
    calls = {"failed": 0}

    def record_and_begin(connection, outcomes, delivery_ids, now_ms):
        if not calls["failed"] and when(outcomes, delivery_ids):
            calls["failed"] += 1
            raise sqlite3.OperationalError("disk I/O error")
        return deliveries.record_and_begin(connection, outcomes, delivery_ids, now_ms)

    return record_and_begin, calls


async def attempt_rows(lassod) -> list[tuple]:
    def query(connection: sqlite3.Connection) -> list[tuple]:
        return [
            tuple(row)
            for row in connection.execute(
                "SELECT number, outcome FROM attempts ORDER BY delivery_id, number"
            )
        ]

    return await lassod.daemon.database.read(query)


def has_starts(outcomes, delivery_ids) -> bool:
    return bool(delivery_ids)


def has_outcomes(outcomes, delivery_ids) -> bool:
    return bool(outcomes)


@pytest.mark.parametrize(
    ("when", "logged"),
    [(has_starts, (0, 1)), (has_outcomes, (1, 0))],
    ids=["attempt start", "outcome"],
)
async def test_failed_commit_is_retried_without_loss(
    lassod, make_receiver, monkeypatch, captured_logs, when, logged
):
    wrapped, calls = fail_once(when)
    monkeypatch.setattr(recorder, "record_and_begin", wrapped)
    monkeypatch.setattr(recorder, "RETRY_PAUSE_S", 0.05)
    receiver = await make_receiver()
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)

    await complete(lassod, key, table["id"])

    await receiver.wait_for(1)

    async def recorded() -> bool:
        return await attempt_rows(lassod) == [(1, "succeeded")]

    await eventually(recorded)
    assert calls["failed"] == 1
    # The work of the failed commit was kept and committed later: one
    # attempt, sent once.
    assert len(receiver.received) == 1
    failures = [entry for entry in captured_logs if entry["event"] == "outcome_commit_failed"]
    assert [(entry["batch_size"], entry["starts"]) for entry in failures] == [logged]
