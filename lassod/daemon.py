"""The daemon: open the store, start the scheduler and the API, stop cleanly."""

from __future__ import annotations

import asyncio
import gc
import signal
import sqlite3
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractResolver

from lassod import __version__, logs
from lassod.config import ConfigError, Settings, load_settings, merge_reloadable
from lassod.delivery import Sender
from lassod.logs import logger
from lassod.metrics import Metrics
from lassod.retention import Pruner
from lassod.runtime import READY, STOPPED, STOPPING, Runtime
from lassod.scheduler import Scheduler
from lassod.store import Database, StoreError
from lassod.store.database import is_unavailable
from lassod.systemd import Notifier
from lassod.web import create_app


class Daemon:
    """One running lassod: database, scheduler, retention and HTTP server."""

    def __init__(
        self,
        settings: Settings,
        notifier: Notifier | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.runtime = Runtime(settings=settings, metrics=Metrics())
        # Without a notifier it sends nothing, so an in-process daemon never
        # reports to a service manager that runs the host process.
        self.notifier = Notifier({}) if notifier is None else notifier
        # Replaces system DNS for outbound deliveries; tests use a stub.
        self._resolver = resolver
        self.database: Database | None = None
        self.scheduler: Scheduler | None = None
        self._sender: Sender | None = None
        self._pruner: Pruner | None = None
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None
        self.port: int | None = None
        self._log_flusher: asyncio.Task[None] | None = None

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    async def start(self) -> None:
        """Open and migrate the database, listen, rebuild the queue, then report ready.

        The socket listens before the queue is rebuilt, so /healthz responds
        and /readyz reports "starting" while a large queue loads.
        """
        settings = self.settings
        self._log_flusher = asyncio.create_task(
            logs.flush_periodically(), name="lassod-log-flusher"
        )
        self.database = await Database.open(settings.database.path)
        await self.database.check_writable()
        self.database.on_operation = self.runtime.metrics.database_operation
        self._sender = Sender.create(
            settings.delivery, settings.security, self._resolver
        )
        self.scheduler = Scheduler(
            self.database, self._sender, settings.delivery, self.runtime.metrics
        )
        await self._listen()
        await self.scheduler.start()
        self._pruner = Pruner(self.database, settings.retention)
        self._pruner.start()
        self.runtime.phase = READY
        self.notifier.ready(f"delivering on port {self.port}")
        self.scheduler.on_tick = self.notifier.watchdog_tick
        if self.notifier.watchdog_interval_s is not None:
            self.scheduler.max_idle_s = min(1.0, self.notifier.watchdog_interval_s)
        logger.info(
            "lassod_started",
            version=__version__,
            host=settings.server.host,
            port=self.port,
            database=settings.database.path,
        )

    async def stop(self) -> None:
        """Report stopping, finish or record in-flight attempts, then close.

        The API keeps serving requests while attempts finish, with /readyz at 503.
        """
        if self.runtime.phase == STOPPED:
            return
        logger.info("lassod_stopping")
        self.runtime.phase = STOPPING
        self.notifier.stopping()
        grace_s = self.settings.server.shutdown_grace_s
        if self._pruner is not None:
            await self._pruner.stop()
        if self.scheduler is not None:
            await self.scheduler.stop(grace_s)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._sender is not None:
            await self._sender.close()
        if self.database is not None:
            await self.database.close()
        self.runtime.phase = STOPPED
        logger.info("lassod_stopped")
        if self._log_flusher is not None:
            self._log_flusher.cancel()
            await asyncio.wait([self._log_flusher])

    def reload(self, config_path: str | Path | None) -> bool:
        """Re-read the settings file and apply the settings that can change live.

        A file that fails to load changes nothing, and systemd gets READY=1
        either way. Returns whether settings were applied.
        """
        self.notifier.reloading()
        loaded = _load_for_reload(config_path)
        if loaded is None:
            self.notifier.reloaded("reload failed; previous settings kept")
            return False
        merged, applied, needs_restart = merge_reloadable(self.settings, loaded)
        if needs_restart:
            logger.warning("settings_need_restart", settings=needs_restart)
        self._apply(merged)
        # Names only: a value such as metrics.token is a secret. A setting
        # left out of the file goes back to its default and is listed too.
        logger.info("settings_reloaded", changed=applied, log_level=merged.log.level)
        self.notifier.reloaded(f"delivering on port {self.port}")
        return True

    def _apply(self, settings: Settings) -> None:
        self.runtime.settings = settings
        logs.configure(settings.log.level, settings.log.format)
        if self._sender is not None:
            self._sender.apply_settings(settings.delivery)
        if self.scheduler is not None:
            self.scheduler.apply_settings(settings.delivery)
        if self._pruner is not None:
            self._pruner.apply_settings(settings.retention)

    async def _listen(self) -> None:
        settings = self.settings
        if self.database is None or self.scheduler is None:
            raise RuntimeError("the database and scheduler must exist before listening")
        self.app = create_app(self.runtime, self.database, self.scheduler)
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            # read_json decodes gzip and deflate itself, so that a body it
            # cannot decode, or one in another encoding, gets a JSON error.
            auto_decompress=False,
            handle_signals=False,
            shutdown_timeout=settings.server.shutdown_grace_s,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.server.host, settings.server.port)
        await site.start()
        self.port = _bound_port(self._runner)


def _load_for_reload(config_path: str | Path | None) -> Settings | None:
    """Load settings for a reload, logging a failure instead of raising it.

    Reload runs as a signal callback, so an escaping error would reach only
    the event loop's exception handler, and systemd would wait in vain for
    the READY=1 that ends a reload.
    """
    try:
        return load_settings(config_path)
    except ConfigError as error:
        logger.error("settings_reload_failed", error=str(error))
    except Exception as error:
        logger.exception("settings_reload_failed", error=repr(error))
    return None


async def serve(settings: Settings, config_path: str | Path | None = None) -> bool:
    """Run until SIGTERM or SIGINT; SIGHUP reloads settings from config_path.

    Returns False if start-up failed, after logging the error and stopping
    whatever had started.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    daemon = Daemon(settings, Notifier())
    loop.add_signal_handler(signal.SIGHUP, daemon.reload, config_path)
    try:
        started = await _start(daemon)
        if started:
            freeze_startup_objects()
            await stop.wait()
    finally:
        await daemon.stop()
    return started


def freeze_startup_objects() -> int:
    """Exclude every object alive now from later garbage collections.

    Modules, classes and the app built at start-up live as long as the
    process, yet each full collection walked all of them. At 1,000 events a
    second that stopped the event loop for 27 to 37 ms one to three times in
    five seconds, enough to set the 99th percentile of delivery latency.
    Returns the number of objects frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def _start(daemon: Daemon) -> bool:
    """Start the daemon, or log lassod_start_failed and return False."""
    try:
        await daemon.start()
    except (StoreError, OSError) as error:
        logger.error("lassod_start_failed", error=str(error))
        return False
    except sqlite3.Error as error:
        # Settling interrupted attempts, for one, is a write that fails when
        # another process holds the write lock past the busy timeout.
        message = f"database {daemon.settings.database.path!r} failed: {error}"
        if is_unavailable(error):
            message += (
                "; if another process holds a write lock on it, start lassod"
                " again once that process has finished"
            )
        logger.error("lassod_start_failed", error=message)
        return False
    return True


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
