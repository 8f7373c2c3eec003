"""Helpers for tests of the daemon's operation: a wedged scheduler loop."""

from __future__ import annotations

import asyncio

from lassod.scheduler import Scheduler


async def wedge_scheduler(scheduler: Scheduler) -> None:
    """Make the scheduler loop hang inside its next pass, as a stuck query would.

    Returns once the loop is stuck. Cancel scheduler._task to release it.
    """
    wedged = asyncio.Event()

    async def hang(now: int) -> None:
        wedged.set()
        await asyncio.Event().wait()

    scheduler._needs_refill = lambda now: True
    scheduler._refill = hang
    scheduler._wake.set()
    await asyncio.wait_for(wedged.wait(), 5)


async def release_wedged(scheduler: Scheduler) -> None:
    """Cancel a wedged loop so that the daemon can stop."""
    if scheduler._task is not None:
        scheduler._task.cancel()
        scheduler._task = None
