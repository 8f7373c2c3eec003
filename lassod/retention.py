"""Retention: a background task that prunes old finished deliveries."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lassod.clock import now_ms
from lassod.config import RetentionSettings
from lassod.logs import error_text, logger
from lassod.store import Database
from lassod.store import retention as queries
from lassod.store.database import is_unavailable

# A pause between batches lets the scheduler's queries run in between, since
# all queries share one database thread.
BATCH_PAUSE_S = 0.005
VACUUM_PAGES = 1000


@dataclass
class PruneTotals:
    """Rows and pages removed by one retention pass."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    pages: int = 0


class Pruner:
    """Delete deliveries, attempts and events that are past their age, in batches.

    Succeeded deliveries go after retention.succeeded_max_age_s; abandoned and
    cancelled ones after retention.abandoned_max_age_s, counted from their
    last change. An event goes with its last delivery, and an event that
    never had one goes after the shorter of the two ages.
    """

    def __init__(self, database: Database, settings: RetentionSettings) -> None:
        self._database = database
        self._settings = settings
        self._event_cursor: tuple[int, str] = (0, "")
        self._task: asyncio.Task[None] | None = None

    def apply_settings(self, settings: RetentionSettings) -> None:
        self._settings = settings

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lassod-retention")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def prune(self, now: int) -> PruneTotals:
        """Run one full pass: every aged delivery and event, then vacuum."""
        settings = self._settings
        totals = PruneTotals()
        succeeded_before = now - round(settings.succeeded_max_age_s * 1000)
        abandoned_before = now - round(settings.abandoned_max_age_s * 1000)
        await self._prune_status("succeeded", succeeded_before, totals)
        await self._prune_status("abandoned", abandoned_before, totals)
        await self._prune_status("cancelled", abandoned_before, totals)
        await self._prune_events(max(succeeded_before, abandoned_before), totals)
        await self._vacuum(totals)
        return totals

    async def _run(self) -> None:
        while True:
            try:
                totals = await self.prune(now_ms())
            except Exception as error:
                if is_unavailable(error):
                    # The next pass tries again once the database recovers,
                    # and a traceback would only repeat the error's text.
                    logger.error(
                        "retention_failed",
                        error=error_text(error),
                        retry_in_s=self._settings.interval_s,
                    )
                else:
                    logger.exception("retention_failed")
            else:
                if totals.deliveries or totals.events or totals.pages:
                    logger.info(
                        "retention_pruned",
                        deliveries=totals.deliveries,
                        attempts=totals.attempts,
                        events=totals.events,
                        pages_freed=totals.pages,
                    )
            await asyncio.sleep(self._settings.interval_s)

    async def _prune_status(
        self, status: str, before_ms: int, totals: PruneTotals
    ) -> None:
        limit = self._settings.batch_size
        while True:
            count = await self._database.transaction(
                queries.prune_finished, status, before_ms, limit
            )
            totals.deliveries += count.deliveries
            totals.attempts += count.attempts
            totals.events += count.events
            if count.deliveries < limit:
                return
            await asyncio.sleep(BATCH_PAUSE_S)

    async def _prune_events(self, before_ms: int, totals: PruneTotals) -> None:
        """Delete old events that never had a delivery.

        Events whose deliveries are pruned go with their last delivery, so
        this scan only moves forward and checks each event once per process.
        """
        while True:
            deleted, cursor = await self._database.transaction(
                queries.prune_unreferenced_events,
                self._event_cursor,
                before_ms,
                self._settings.batch_size,
            )
            totals.events += deleted
            if cursor is None:
                return
            self._event_cursor = cursor
            await asyncio.sleep(BATCH_PAUSE_S)

    async def _vacuum(self, totals: PruneTotals) -> None:
        while True:
            freed = await self._database.read(queries.incremental_vacuum, VACUUM_PAGES)
            totals.pages += freed
            if freed < VACUUM_PAGES:
                return
            await asyncio.sleep(BATCH_PAUSE_S)
