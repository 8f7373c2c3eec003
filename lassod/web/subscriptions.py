"""Handlers for /api/v1/catalog/webhooks, the catalog webhook subscriptions."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from lassod.catalog import subscriptions
from lassod import deliveries
from lassod.clock import now_ms, now_us
from lassod.logs import logger
from lassod.store import deliveries as delivery_queries
from lassod.store import endpoints as endpoint_queries
from lassod.store import subscriptions as subscription_queries
from lassod.web.common import (
    PAGE_PARAMETERS,
    company_id,
    page_of,
    read_json,
    reject_unknown_query,
)
from lassod.web.errors import json_response, not_found
from lassod.web.deliveries import check_requeued, recovered_response
from lassod.web.state import DATABASE, SCHEDULER, SETTINGS

routes = web.RouteTableDef()


@routes.post("/api/v1/catalog/webhooks")
async def create_subscription(request: web.Request) -> web.Response:
    """Create a subscription; the response is the only one showing the secret."""
    company = await company_id(request)
    new = subscriptions.parse_new(
        await read_json(request), request.app[SETTINGS].security
    )
    subscription = await request.app[DATABASE].transaction(
        subscription_queries.insert_subscription, company, new, now_us()
    )
    logger.info(
        "catalog_subscription_created",
        subscription_id=subscription.id,
        company_id=company,
        events=list(subscription.events),
        active=subscription.active,
    )
    return json_response(
        subscriptions.public(subscription, secret=new.secret), status=201
    )


@routes.get("/api/v1/catalog/webhooks")
async def list_subscriptions(request: web.Request) -> web.Response:
    company = await company_id(request)
    reject_unknown_query(request, PAGE_PARAMETERS)
    page = page_of(request)
    rows, total = await request.app[DATABASE].read(
        subscription_queries.list_subscriptions, company, page.offset, page.limit
    )
    return json_response(
        page.render([subscriptions.public(row) for row in rows], total)
    )


@routes.get("/api/v1/catalog/webhooks/{subscription_id}")
async def get_subscription(request: web.Request) -> web.Response:
    company = await company_id(request)
    subscription_id = request.match_info["subscription_id"]
    subscription = await request.app[DATABASE].read(
        subscription_queries.get_subscription, company, subscription_id
    )
    if subscription is None:
        raise not_found("subscription", subscription_id)
    return json_response(subscriptions.public(subscription))


def _update_reading_url(
    connection: sqlite3.Connection, company: str, subscription_id: str, *args: Any
) -> tuple[Any, str | None]:
    """Apply a subscription PATCH and return it with the previous endpoint URL."""
    current = endpoint_queries.get_endpoint(connection, subscription_id)
    updated = subscription_queries.update_subscription(
        connection, company, subscription_id, *args
    )
    return updated, current.url if current is not None else None


@routes.patch("/api/v1/catalog/webhooks/{subscription_id}")
async def update_subscription(request: web.Request) -> web.Response:
    company = await company_id(request)
    subscription_id = request.match_info["subscription_id"]
    changes = subscriptions.parse_patch(
        await read_json(request), request.app[SETTINGS].security
    )
    grace_s = request.app[SETTINGS].delivery.secret_rotation_grace_s
    subscription, old_url = await request.app[DATABASE].transaction(
        _update_reading_url,
        company,
        subscription_id,
        changes,
        now_us(),
        round(grace_s * 1000),
    )
    if subscription is None:
        raise not_found("subscription", subscription_id)
    if "url" in changes:
        request.app[SCHEDULER].endpoint_moved(old_url, changes["url"])
    # Field names only: the values may be a secret or an auth header value.
    logger.info(
        "catalog_subscription_updated",
        subscription_id=subscription_id,
        company_id=company,
        fields=sorted(changes),
    )
    return json_response(subscriptions.public(subscription))


@routes.delete("/api/v1/catalog/webhooks/{subscription_id}")
async def delete_subscription(request: web.Request) -> web.Response:
    """Delete a subscription and cancel its pending deliveries."""
    company = await company_id(request)
    subscription_id = request.match_info["subscription_id"]
    cancelled = await request.app[DATABASE].transaction(
        subscription_queries.delete_subscription, company, subscription_id, now_us()
    )
    if cancelled is None:
        raise not_found("subscription", subscription_id)
    logger.info(
        "catalog_subscription_deleted",
        subscription_id=subscription_id,
        company_id=company,
        cancelled_deliveries=cancelled,
    )
    return web.Response(status=204)


@routes.post("/api/v1/catalog/webhooks/{subscription_id}/recover")
async def recover_abandoned(request: web.Request) -> web.Response:
    """Queue a new delivery for each abandoned delivery in a time window."""
    company = await company_id(request)
    subscription_id = request.match_info["subscription_id"]
    since_ms, until_ms = deliveries.parse_window(await read_json(request))
    database = request.app[DATABASE]
    found = await database.read(
        subscription_queries.get_subscription, company, subscription_id
    )
    if found is None:
        raise not_found("subscription", subscription_id)
    requeue = await database.transaction(
        delivery_queries.recover_abandoned,
        subscription_id,
        since_ms,
        until_ms,
        now_ms(),
    )
    check_requeued(requeue, f"subscription {subscription_id!r}", "subscription")
    request.app[SCHEDULER].notify(requeue.queued)
    return recovered_response(requeue, subscription_id)
