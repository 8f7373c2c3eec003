"""Handlers for /api/v1/deliveries: history, details and redelivery."""

from __future__ import annotations

import sqlite3

from aiohttp import web

from lassod import deliveries
from lassod.clock import now_ms
from lassod.logs import logger
from lassod.store import deliveries as delivery_queries
from lassod.store import history
from lassod.store.deliveries import Requeue
from lassod.store.history import DeliveryDetail
from lassod.web.common import company_id, page_of, query_of
from lassod.web.errors import ApiError, json_response, not_found
from lassod.web.state import DATABASE, SCHEDULER

routes = web.RouteTableDef()


@routes.get("/api/v1/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    company = await company_id(request)
    selection = deliveries.parse_filter(query_of(request), company)
    page = page_of(request)
    rows, total = await request.app[DATABASE].read(
        history.list_deliveries, selection, page.offset, page.limit
    )
    return json_response(page.render([deliveries.public(row) for row in rows], total))


@routes.get("/api/v1/deliveries/{delivery_id}")
async def get_delivery(request: web.Request) -> web.Response:
    company = await company_id(request)
    delivery_id = request.match_info["delivery_id"]
    detail = await request.app[DATABASE].read(
        history.get_delivery, company, delivery_id
    )
    if detail is None:
        raise not_found("delivery", delivery_id)
    return json_response(deliveries.public_detail(detail))


@routes.post("/api/v1/deliveries/{delivery_id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    company = await company_id(request)
    delivery_id = request.match_info["delivery_id"]
    requeue, detail = await request.app[DATABASE].transaction(
        _redeliver_and_read, company, delivery_id, now_ms()
    )
    if requeue.result == "not_found":
        raise not_found("delivery", delivery_id)
    check_requeued(requeue, f"delivery {delivery_id!r}", "")
    request.app[SCHEDULER].notify(requeue.queued)
    logger.info(
        "delivery_redelivered",
        delivery_id=delivery_id,
        new_delivery_id=requeue.queued[0].delivery_id,
    )
    if detail is None:
        raise not_found("delivery", requeue.queued[0].delivery_id)
    return json_response(deliveries.public_detail(detail), status=201)


def _redeliver_and_read(
    connection: sqlite3.Connection, company: str, delivery_id: str, now: int
) -> tuple[Requeue, DeliveryDetail | None]:
    """Queue the redelivery and read it back in one transaction.

    A separate read after the commit could fail on a locked database and
    turn a stored redelivery into an error, inviting a second one.
    """
    requeue = delivery_queries.redeliver(connection, company, delivery_id, now)
    if requeue.result != "queued":
        return requeue, None
    detail = history.get_delivery(connection, company, requeue.queued[0].delivery_id)
    return requeue, detail


def check_requeued(requeue: Requeue, target: str, kind: str) -> None:
    """Raise 409 when a redeliver or recover found no active endpoint.

    kind is the target's kind: "table", "subscription", or "" for a delivery.
    It selects the wording of the error message.
    """
    if requeue.result == "no_webhook":
        if kind == "table":
            problem = f"{target} has no webhook_url"
        else:
            problem = f"{target} goes to a table whose webhook_url was removed"
        raise ApiError(409, f"{problem}; set the table's webhook_url first")
    if requeue.result == "deleted":
        if kind == "subscription":
            problem = f"{target} was deleted, so its deliveries cannot be recovered"
        else:
            problem = (
                f"{target} cannot be redelivered because its subscription was deleted"
            )
        raise ApiError(
            409, f"{problem}; a new subscription receives only events created after it"
        )
    if requeue.result == "inactive":
        if kind == "subscription":
            problem = f"{target} is deactivated"
        else:
            problem = f"{target} goes to a deactivated subscription"
        raise ApiError(
            409, f"{problem}; reactivate the subscription with PATCH active=true first"
        )


def recovered_response(requeue: Requeue, endpoint_id: str) -> web.Response:
    """Log a recover and render its response: how many deliveries were queued."""
    logger.info(
        "deliveries_recovered", endpoint_id=endpoint_id, count=len(requeue.queued)
    )
    return json_response(
        {
            "queued": len(requeue.queued),
            "delivery_ids": [item.delivery_id for item in requeue.queued],
        },
        status=202,
    )
