"""Group commits: attempt starts and outcomes written in shared transactions."""

from __future__ import annotations

import asyncio
from typing import Callable

from lassod.clock import now_ms
from lassod.logs import logger
from lassod.store import Database
from lassod.store.deliveries import AttemptJob, AttemptOutcome, record_and_begin
from lassod.store.endpoints import Deactivation

MAX_BATCH = 500


class OutcomeRecorder:
    """Commit attempt outcomes and attempt starts, grouping those that wait.

    One commit per outcome would cap throughput near a thousand attempts a
    second, because each commit costs a thread hand-off and an fsync. Work
    that arrives during a commit shares the next one, so outcomes and the
    starts of the attempts that take their places cost one commit together.
    Grouping adds no delay when idle, since lone work is committed at once.
    """

    def __init__(
        self,
        database: Database,
        on_recorded: Callable[[list[AttemptOutcome], list[Deactivation]], None],
    ) -> None:
        self._database = database
        self._on_recorded = on_recorded
        self._waiting: list[AttemptOutcome] = []
        self._starts: list[tuple[list[str], asyncio.Future[list[AttemptJob]]]] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lassod-outcome-recorder")

    def add(self, outcome: AttemptOutcome) -> None:
        self._waiting.append(outcome)
        self._idle.clear()
        self._ready.set()

    async def begin(self, delivery_ids: list[str]) -> list[AttemptJob]:
        """Commit the start of an attempt for each delivery still pending.

        Returns the jobs in the order of delivery_ids, once their attempt
        rows are committed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[AttemptJob]] = loop.create_future()
        self._starts.append((delivery_ids, future))
        self._idle.clear()
        self._ready.set()
        return await future

    async def drain(self) -> None:
        """Wait until every outcome and start added so far is committed."""
        await self._idle.wait()

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            batch = self._waiting[:MAX_BATCH]
            del self._waiting[:MAX_BATCH]
            starts, self._starts = self._starts, []
            if not self._waiting:
                self._ready.clear()
            await self._commit(batch, starts)
            if not self._waiting and not self._starts:
                self._idle.set()

    async def _commit(
        self,
        batch: list[AttemptOutcome],
        starts: list[tuple[list[str], asyncio.Future[list[AttemptJob]]]],
    ) -> None:
        delivery_ids = [item for ids, _ in starts for item in ids]
        while True:
            try:
                # Shielded: a cancelled stop must not abandon a half-sent commit.
                deactivated, jobs = await asyncio.shield(
                    self._database.transaction(
                        record_and_begin, batch, delivery_ids, now_ms()
                    )
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                # NOTE: a failing disk stalls recording here, which is the safe
                # side: deliveries stay in flight and are retried at restart.
                logger.exception(
                    "outcome_commit_failed",
                    batch_size=len(batch),
                    starts=len(delivery_ids),
                )
                await asyncio.sleep(1.0)
        if batch:
            self._on_recorded(batch, deactivated)
        _hand_out(jobs, starts)


def _hand_out(
    jobs: list[AttemptJob],
    starts: list[tuple[list[str], asyncio.Future[list[AttemptJob]]]],
) -> None:
    by_id = {job.delivery_id: job for job in jobs}
    for delivery_ids, future in starts:
        if not future.done():
            future.set_result([by_id[item] for item in delivery_ids if item in by_id])
