"""Group commits: attempt starts and outcomes written in shared transactions."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Callable

from lassod.clock import now_ms
from lassod.logs import error_text, logger
from lassod.store import Database
from lassod.store.deliveries import (
    AttemptJob,
    AttemptOutcome,
    record_and_begin,
    take_back_attempts,
)
from lassod.store.endpoints import Deactivation

MAX_BATCH = 500
# Pause after a failed commit before its work is tried again.
RETRY_PAUSE_S = 1.0


class OutcomeRecorder:
    """Commit attempt outcomes and attempt starts, grouping those that wait.

    One commit per outcome would cap throughput near a thousand attempts a
    second, because each commit costs a thread hand-off and an fsync. Work
    that arrives during a commit shares the next one, so outcomes and the
    starts of the attempts that take their places cost one commit together.
    Grouping adds no delay when idle, since lone work is committed at once.

    The work is taken when its group begins on the SQLite thread, not when
    it is queued, so everything that arrived during the previous commit
    goes into the next one.
    """

    def __init__(
        self,
        database: Database,
        on_recorded: Callable[[list[AttemptOutcome], list[Deactivation]], None],
    ) -> None:
        self._database = database
        self._on_recorded = on_recorded
        # Shared with the SQLite thread, which takes them under _lock.
        self._lock = threading.Lock()
        self._waiting: list[AttemptOutcome] = []
        self._starts: list[_Start] = []
        self._unsent: list[AttemptJob] = []
        self._queued = False
        # Takes queued with the database and not yet handled on the loop.
        self._open_takes: set[_Take] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._retry: asyncio.TimerHandle | None = None
        # time.monotonic() of the first failed commit since the last success.
        self._failing_since: float | None = None
        self._stopped = False

    def add(self, outcome: AttemptOutcome) -> None:
        with self._lock:
            self._waiting.append(outcome)
        self._queue_take()

    async def begin(self, delivery_ids: list[str]) -> list[AttemptJob]:
        """Commit the start of an attempt for each delivery still pending.

        Returns the jobs in the order of delivery_ids, once their attempt
        rows are committed.
        """
        future: asyncio.Future[list[AttemptJob]] = (
            asyncio.get_running_loop().create_future()
        )
        with self._lock:
            self._starts.append((delivery_ids, future))
        self._queue_take()
        return await future

    def take_back(self, jobs: list[AttemptJob]) -> None:
        """Undo committed attempt starts whose requests were never sent."""
        with self._lock:
            self._unsent.extend(jobs)
        self._queue_take()

    async def drain(self) -> None:
        """Wait until every outcome and start added so far is committed."""
        await self._idle.wait()

    async def stop(self, timeout_s: float) -> None:
        """Wait up to timeout_s for the work added so far to be committed."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.drain()
        except TimeoutError:
            with self._lock:
                outcomes = len(self._waiting)
                starts = sum(len(ids) for ids, _ in self._starts)
                unsent = len(self._unsent)
            for take in self._open_takes:
                outcomes += len(take.batch)
                starts += sum(len(ids) for ids, _ in take.starts)
                unsent += len(take.unsent)
            # Attempts whose start was committed are found as interrupted at
            # the next start. Uncommitted starts leave their deliveries due.
            logger.error(
                "outcomes_not_recorded",
                outcomes=outcomes,
                attempt_starts=starts,
                starts_to_take_back=unsent,
            )
        self._stopped = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _queue_take(self) -> None:
        """Make sure a take is queued for the next group commit."""
        self._idle.clear()
        if self._retry is not None:
            # A failed commit is waiting out its pause before the retry.
            return
        with self._lock:
            if self._queued:
                return
            self._queued = True
        take = _Take(self)
        self._open_takes.add(take)
        self._database.submit(take.record_and_begin).add_done_callback(take.committed)

    def _taken(self) -> tuple[list[AttemptOutcome], list[_Start], list[AttemptJob]]:
        """Take the work waiting now, on the SQLite thread."""
        with self._lock:
            batch = self._waiting[:MAX_BATCH]
            del self._waiting[:MAX_BATCH]
            starts, self._starts = self._starts, []
            unsent, self._unsent = self._unsent, []
            self._queued = False
        return batch, starts, unsent

    def _committed(self, take: _Take, error: BaseException | None) -> None:
        """Hand out a take's results, or put its work back after a failure."""
        self._open_takes.discard(take)
        if error is not None:
            with self._lock:
                if not take.ran:
                    # The group failed before this take ran: it took nothing.
                    self._queued = False
                self._waiting[:0] = take.batch
                self._starts[:0] = take.starts
                self._unsent[:0] = take.unsent
                waiting = len(self._waiting)
                starts = sum(len(ids) for ids, _ in self._starts)
            # NOTE: while the disk fails, recording stalls here and is tried
            # again every RETRY_PAUSE_S. Deliveries stay in flight, which is
            # the safe side: a restart finds their attempts interrupted.
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            logger.error(
                "outcome_commit_failed",
                outcomes_waiting=waiting,
                starts_waiting=starts,
                error=error_text(error),
            )
            if self._retry is None and not self._stopped:
                self._retry = asyncio.get_running_loop().call_later(
                    RETRY_PAUSE_S, self._retry_now
                )
            return
        if self._failing_since is not None:
            logger.info(
                "outcome_commit_recovered",
                failed_for_s=round(time.monotonic() - self._failing_since, 1),
            )
            self._failing_since = None
        if take.batch:
            self._on_recorded(take.batch, take.deactivated)
        _hand_out(take.jobs, take.starts)
        with self._lock:
            more = bool(self._waiting or self._starts or self._unsent)
        if more:
            self._queue_take()
        elif not self._open_takes and self._retry is None:
            self._idle.set()

    def _retry_now(self) -> None:
        self._retry = None
        self._queue_take()


_Start = tuple[list[str], "asyncio.Future[list[AttemptJob]]"]


class _Take:
    """One group commit's share of the recorder's work."""

    def __init__(self, recorder: OutcomeRecorder) -> None:
        self._recorder = recorder
        self.ran = False
        self.batch: list[AttemptOutcome] = []
        self.starts: list[_Start] = []
        self.unsent: list[AttemptJob] = []
        self.deactivated: list[Deactivation] = []
        self.jobs: list[AttemptJob] = []

    def record_and_begin(self, connection: sqlite3.Connection) -> None:
        """Record the work waiting now, on the SQLite thread inside the group."""
        self.batch, self.starts, self.unsent = self._recorder._taken()
        self.ran = True
        now = now_ms()
        take_back_attempts(connection, self.unsent, now)
        delivery_ids = [item for ids, _ in self.starts for item in ids]
        self.deactivated, self.jobs = record_and_begin(
            connection, self.batch, delivery_ids, now
        )

    def committed(self, future: asyncio.Future[None]) -> None:
        """Pass the commit's result to the recorder; runs on the event loop."""
        if future.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = future.exception()
        self._recorder._committed(self, error)


def _hand_out(jobs: list[AttemptJob], starts: list[_Start]) -> None:
    by_id = {job.delivery_id: job for job in jobs}
    for delivery_ids, future in starts:
        if not future.done():
            future.set_result([by_id[item] for item in delivery_ids if item in by_id])
