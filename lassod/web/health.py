"""Handlers for /healthz, /readyz and /metrics: no API key, not under /api."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time

from aiohttp import web

from lassod import metrics
from lassod.config import MetricsSettings
from lassod.runtime import READY, STARTING
from lassod.store import StoreError
from lassod.store import database as store
from lassod.store import deliveries as delivery_queries
from lassod.web.errors import ApiError, json_response
from lassod.web.state import DATABASE, RUNTIME, SCHEDULER

# The scheduler loop passes at least once a second when healthy.
READY_TICK_MAX_AGE_S = 10.0
READY_DATABASE_TIMEOUT_S = 2.0
# After a failed commit, /readyz reports not ready for this long. While
# deliveries wait to be recorded, the recorder tries again every second, so
# a disk that stays full keeps lassod not ready.
READY_WRITE_FAILURE_S = 30.0
PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "alive"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    reason = await _not_ready_reason(request.app)
    if reason is not None:
        return json_response({"status": "not_ready", "reason": reason}, status=503)
    return json_response({"status": "ready"})


@routes.get("/metrics")
async def metrics_text(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    _check_metrics_access(request, runtime.settings.metrics)
    pending = await request.app[DATABASE].read(delivery_queries.count_pending)
    runtime.metrics.set_pending(pending)
    return web.Response(
        body=runtime.metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE}
    )


async def _not_ready_reason(app: web.Application) -> str | None:
    phase = app[RUNTIME].phase
    if phase == STARTING:
        return "starting: the delivery queue is being rebuilt"
    if phase != READY:
        return "shutting down"
    idle_s = time.monotonic() - app[SCHEDULER].last_tick
    if idle_s > READY_TICK_MAX_AGE_S:
        return f"scheduler loop has not run for {idle_s:.1f} s"
    database = app[DATABASE]
    try:
        async with asyncio.timeout(READY_DATABASE_TIMEOUT_S):
            await database.read(store.ping)
    except TimeoutError:
        return (
            f"database did not answer within {READY_DATABASE_TIMEOUT_S} s;"
            " another process may hold its write lock, or the disk is failing"
        )
    except StoreError as error:
        return str(error)
    failed_at = database.write_error_at
    if failed_at is not None and time.monotonic() - failed_at < READY_WRITE_FAILURE_S:
        return (
            f"a database write failed {time.monotonic() - failed_at:.0f} s ago"
            f" ({database.write_error}); deliveries and API changes wait until the"
            " disk has room and the database is writable"
        )
    return None


def _check_metrics_access(request: web.Request, settings: MetricsSettings) -> None:
    if not _client_allowed(request.remote, settings.allowed_clients):
        raise ApiError(
            403,
            f"client address {request.remote} may not read metrics;"
            " add its network to metrics.allowed_clients",
        )
    if settings.token is None:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), settings.token.encode()
    ):
        raise ApiError(
            401,
            "missing or wrong metrics token; send Authorization: Bearer <metrics.token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _client_allowed(remote: str | None, networks: tuple[str, ...]) -> bool:
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network) for network in networks)
