"""The HTTP API: an aiohttp application over the store and the scheduler."""

from __future__ import annotations

from aiohttp import web

from lassod.runtime import Runtime
from lassod.scheduler import Scheduler
from lassod.store import Database
from lassod.web import health, tables
from lassod.web.errors import RESPONSE_OBSERVER, error_middleware
from lassod.web.state import DATABASE, RUNTIME, SCHEDULER, SETTINGS


def create_app(runtime: Runtime, database: Database, scheduler: Scheduler) -> web.Application:
    settings = runtime.settings
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=settings.server.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[RUNTIME] = runtime
    app[DATABASE] = database
    app[SCHEDULER] = scheduler
    app[RESPONSE_OBSERVER] = runtime.metrics.api_request
    app.add_routes(health.routes)
    app.add_routes(tables.routes)
    return app
