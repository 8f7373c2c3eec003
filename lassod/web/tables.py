"""Handlers for /api/v1/tables."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from lassod import deliveries, tables
from lassod.tables import TableRow
from lassod.clock import now_ms, now_us
from lassod.logs import logger
from lassod.store import deliveries as delivery_queries
from lassod.store import endpoints as endpoint_queries
from lassod.store import tables as table_queries
from lassod.validation import ValidationError
from lassod.web.common import (
    PAGE_PARAMETERS,
    company_id,
    page_of,
    read_json,
    reject_unknown_query,
)
from lassod.web.deliveries import check_requeued, recovered_response
from lassod.web.errors import ApiError, json_response, not_found
from lassod.web.state import DATABASE, SCHEDULER, SETTINGS

routes = web.RouteTableDef()


@routes.post("/api/v1/tables")
async def create_table(request: web.Request) -> web.Response:
    company = await company_id(request)
    security = request.app[SETTINGS].security
    new = tables.parse_new_table(await read_json(request), security)
    table = await request.app[DATABASE].transaction(
        table_queries.insert_table, company, new, now_us()
    )
    return json_response(tables.public(table), status=201)


@routes.get("/api/v1/tables")
async def list_tables(request: web.Request) -> web.Response:
    company = await company_id(request)
    reject_unknown_query(request, PAGE_PARAMETERS)
    page = page_of(request)
    rows, total = await request.app[DATABASE].read(
        table_queries.list_tables, company, page.offset, page.limit
    )
    return json_response(page.render([tables.public(row) for row in rows], total))


@routes.get("/api/v1/tables/{table_id}")
async def get_table(request: web.Request) -> web.Response:
    company = await company_id(request)
    table_id = request.match_info["table_id"]
    table = await request.app[DATABASE].read(
        table_queries.get_table, company, table_id
    )
    if table is None:
        raise not_found("table", table_id)
    return json_response(tables.public(table))


@routes.post("/api/v1/tables/{table_id}/status")
async def report_status(request: web.Request) -> web.Response:
    company = await company_id(request)
    table_id = request.match_info["table_id"]
    report = tables.parse_status_report(await read_json(request))
    change = await request.app[DATABASE].transaction(
        table_queries.apply_status_report, company, table_id, report, now_us()
    )
    if change.result == "not_found" or change.table is None:
        raise not_found("table", table_id)
    if change.result == "conflict":
        raise ApiError(
            409,
            f"table {table_id!r} is {change.table.status}; status cannot move "
            f"to {report.status} (order: queued, processing, completed or failed)",
        )
    request.app[SCHEDULER].notify(change.queued)
    return json_response(tables.public(change.table))


def _change_webhook_reading_url(
    connection: sqlite3.Connection, company: str, table_id: str, *args: Any
) -> tuple[tuple[str, TableRow | None], str | None]:
    """Apply a webhook PATCH and return its result with the previous endpoint URL."""
    current = endpoint_queries.get_endpoint(connection, table_id)
    changed = table_queries.change_webhook(connection, company, table_id, *args)
    return changed, current.url if current is not None else None


@routes.patch("/api/v1/tables/{table_id}")
async def change_webhook(request: web.Request) -> web.Response:
    company = await company_id(request)
    table_id = request.match_info["table_id"]
    change = tables.parse_webhook_change(
        await read_json(request), request.app[SETTINGS].security
    )
    grace_s = request.app[SETTINGS].delivery.secret_rotation_grace_s
    (result, table), old_url = await request.app[DATABASE].transaction(
        _change_webhook_reading_url,
        company,
        table_id,
        change,
        now_us(),
        round(grace_s * 1000),
    )
    if table is None:
        raise not_found("table", table_id)
    if result == "url_required":
        raise ValidationError(
            "webhook_url",
            "is required: the table has no webhook to attach these settings to",
        )
    if "url" in change.changed and change.url is not None:
        request.app[SCHEDULER].endpoint_moved(old_url, change.url)
    logger.info(
        "table_webhook_changed", table_id=table_id, changed=sorted(change.changed)
    )
    return json_response(tables.public(table))


@routes.post("/api/v1/tables/{table_id}/redeliver")
async def redeliver_abandoned(request: web.Request) -> web.Response:
    company = await company_id(request)
    table_id = request.match_info["table_id"]
    since_ms, until_ms = deliveries.parse_window(await read_json(request))
    database = request.app[DATABASE]
    if await database.read(table_queries.get_table, company, table_id) is None:
        raise not_found("table", table_id)
    requeue = await database.transaction(
        delivery_queries.recover_abandoned, table_id, since_ms, until_ms, now_ms()
    )
    check_requeued(requeue, f"table {table_id!r}", "table")
    request.app[SCHEDULER].notify(requeue.queued)
    return recovered_response(requeue, table_id)
