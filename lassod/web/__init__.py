"""The HTTP API: an aiohttp application over the store and the scheduler."""

from __future__ import annotations

from aiohttp import web

from lassod.config import Settings
from lassod.scheduler import Scheduler
from lassod.store import Database
from lassod.web import tables
from lassod.web.errors import error_middleware
from lassod.web.ratelimit import RateLimits
from lassod.web.state import DATABASE, RATE_LIMITS, SCHEDULER, SETTINGS


def create_app(settings: Settings, database: Database, scheduler: Scheduler) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=settings.server.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[DATABASE] = database
    app[SCHEDULER] = scheduler
    app[RATE_LIMITS] = RateLimits.from_settings(settings.server)
    app.add_routes(tables.routes)
    return app
