"""The daemon: open the store, start the scheduler and the API, stop cleanly."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from lassod import __version__, logs
from lassod.config import Settings
from lassod.delivery import Sender
from lassod.logs import logger
from lassod.scheduler import Scheduler
from lassod.store import Database
from lassod.web import create_app


class Daemon:
    """One running lassod: database, scheduler and HTTP server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database: Database | None = None
        self.scheduler: Scheduler | None = None
        self._sender: Sender | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._log_flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.settings
        self._log_flusher = asyncio.create_task(
            logs.flush_periodically(), name="lassod-log-flusher"
        )
        self.database = await Database.open(settings.database.path)
        self._sender = Sender.create(settings.delivery)
        self.scheduler = Scheduler(self.database, self._sender, settings.delivery)
        await self.scheduler.start()
        app = create_app(settings, self.database, self.scheduler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.server.host, settings.server.port)
        await site.start()
        self.port = _bound_port(self._runner)
        logger.info(
            "lassod_started",
            version=__version__,
            host=settings.server.host,
            port=self.port,
            database=settings.database.path,
        )

    async def stop(self) -> None:
        """Stop taking requests, finish or record in-flight attempts, close."""
        logger.info("lassod_stopping")
        if self._runner is not None:
            await self._runner.cleanup()
        if self.scheduler is not None:
            await self.scheduler.stop(self.settings.server.shutdown_grace_s)
        if self._sender is not None:
            await self._sender.close()
        if self.database is not None:
            await self.database.close()
        logger.info("lassod_stopped")
        if self._log_flusher is not None:
            self._log_flusher.cancel()
            await asyncio.wait([self._log_flusher])


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    daemon = Daemon(settings)
    try:
        await daemon.start()
        await stop.wait()
    finally:
        await daemon.stop()


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
