"""The HTTP API: an aiohttp application over the store and the scheduler."""

from __future__ import annotations

from aiohttp import web

from lassod.runtime import Runtime
from lassod.scheduler import Scheduler
from lassod.store import Database
from lassod.web import (
    attributes,
    deliveries,
    docs,
    health,
    products,
    subscriptions,
    tables,
)
from lassod.web.errors import RESPONSE_OBSERVER, error_middleware
from lassod.web.keycache import KeyCache
from lassod.web.ratelimit import RateLimits
from lassod.web.state import (
    DATABASE,
    KEY_CACHE,
    RATE_LIMITS,
    RUNTIME,
    SCHEDULER,
    SETTINGS,
)


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
    app[RATE_LIMITS] = RateLimits.from_settings(settings.server)
    app[KEY_CACHE] = KeyCache()
    app[RESPONSE_OBSERVER] = runtime.metrics.api_request
    app.add_routes(docs.routes)
    app.add_routes(health.routes)
    app.add_routes(tables.routes)
    app.add_routes(deliveries.routes)
    app.add_routes(attributes.routes)
    # Before products: /api/v1/catalog/{product_id} would also match
    # /api/v1/catalog/webhooks.
    app.add_routes(subscriptions.routes)
    app.add_routes(products.routes)
    return app
