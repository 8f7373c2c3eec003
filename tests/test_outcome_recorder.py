"""The outcome recorder: a failed commit loses neither an attempt start nor an outcome."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from lassod import recorder
from lassod.store import Database, deliveries
from lassod.store.deliveries import AttemptOutcome
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
    waiting = [(entry["outcomes_waiting"], entry["starts_waiting"]) for entry in failures]
    assert waiting == [logged]
    assert failures[0]["error"] == "OperationalError: disk I/O error"
    recovered = [
        entry for entry in captured_logs if entry["event"] == "outcome_commit_recovered"
    ]
    assert len(recovered) == 1
    assert recovered[0]["failed_for_s"] >= 0


async def test_stop_gives_up_on_a_stuck_commit(tmp_path, monkeypatch, captured_logs):
    """A commit that cannot finish must not hold the shutdown past its bound."""
    release = threading.Event()

    def stuck(connection, outcomes, delivery_ids, now_ms):
        # Runs on the SQLite thread, as a commit blocked by a lock would.
        release.wait(5)
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(recorder, "record_and_begin", stuck)
    database = await Database.open(str(tmp_path / "stuck.db"))
    outcomes = recorder.OutcomeRecorder(database, lambda batch, deactivated: None)
    outcomes.add(
        AttemptOutcome("dlv_1", 1, 5, 204, None, "", "succeeded", "succeeded", None)
    )
    try:
        started = time.monotonic()
        await outcomes.stop(0.2)
        elapsed = time.monotonic() - started
    finally:
        release.set()
        await database.close()

    assert elapsed < 1.0
    [entry] = [item for item in captured_logs if item["event"] == "outcomes_not_recorded"]
    assert (entry["outcomes"], entry["attempt_starts"]) == (1, 0)
