"""Group commits: attempt outcomes written in batches, one transaction each."""

from __future__ import annotations

import asyncio
from typing import Callable

from lassod.clock import now_ms
from lassod.logs import logger
from lassod.store import Database
from lassod.store.deliveries import AttemptOutcome, record_outcomes
from lassod.store.endpoints import Deactivation

MAX_BATCH = 500


class OutcomeRecorder:
    """Write outcomes as they arrive; those arriving during a commit share the next.

    One commit per outcome would cap throughput near a thousand attempts a
    second, because each commit costs a thread hand-off and an fsync. Grouping
    adds no delay when idle, since a lone outcome is committed at once.
    """

    def __init__(
        self,
        database: Database,
        on_recorded: Callable[[list[AttemptOutcome], list[Deactivation]], None],
    ) -> None:
        self._database = database
        self._on_recorded = on_recorded
        self._waiting: list[AttemptOutcome] = []
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

    async def drain(self) -> None:
        """Wait until every outcome added so far is committed."""
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
            if not self._waiting:
                self._ready.clear()
            await self._commit(batch)
            if not self._waiting:
                self._idle.set()

    async def _commit(self, batch: list[AttemptOutcome]) -> None:
        while True:
            try:
                # Shielded: a cancelled stop must not abandon a half-sent commit.
                deactivated = await asyncio.shield(
                    self._database.transaction(record_outcomes, batch, now_ms())
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                # NOTE: a failing disk stalls recording here, which is the safe
                # side: deliveries stay in flight and are retried at restart.
                logger.exception("outcome_commit_failed", batch_size=len(batch))
                await asyncio.sleep(1.0)
        self._on_recorded(batch, deactivated)
