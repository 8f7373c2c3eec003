"""Handlers for /api/v1/attributes, the attribute dictionary."""

from __future__ import annotations

from aiohttp import web

from lassod.catalog import attributes
from lassod.store import attributes as attribute_queries
from lassod.validation import ensure_object
from lassod.web.common import (
    PAGE_PARAMETERS,
    company_id,
    page_of,
    read_json,
    reject_unknown_query,
)
from lassod.web.errors import ApiError, json_response, not_found
from lassod.web.state import DATABASE, SCHEDULER

routes = web.RouteTableDef()


@routes.post("/api/v1/attributes")
async def upsert_attributes(request: web.Request) -> web.Response:
    """Upsert one attribute, or up to 500 given as {"attributes": [...]}."""
    company = await company_id(request)
    body = ensure_object(await read_json(request))
    database = request.app[DATABASE]
    if "attributes" in body:
        items = attributes.parse_bulk(body)
        changes = await database.transaction(
            attribute_queries.upsert_attributes, company, items
        )
        request.app[SCHEDULER].notify(
            item for change in changes for item in change.queued
        )
        results = [change.result for change in changes]
        return json_response(
            {
                "data": [attributes.public(change.attribute) for change in changes],
                "created": results.count("created"),
                "updated": results.count("updated"),
                "unchanged": results.count("unchanged"),
            }
        )
    item = attributes.parse_upsert(body)
    change = await database.transaction(
        attribute_queries.upsert_attribute, company, item
    )
    request.app[SCHEDULER].notify(change.queued)
    status = 201 if change.result == "created" else 200
    return json_response(attributes.public(change.attribute), status=status)


@routes.get("/api/v1/attributes")
async def list_attributes(request: web.Request) -> web.Response:
    company = await company_id(request)
    reject_unknown_query(request, PAGE_PARAMETERS)
    page = page_of(request)
    rows, total = await request.app[DATABASE].read(
        attribute_queries.list_attributes, company, page.offset, page.limit
    )
    return json_response(page.render([attributes.public(row) for row in rows], total))


@routes.get("/api/v1/attributes/{key}")
async def get_attribute(request: web.Request) -> web.Response:
    company = await company_id(request)
    key = request.match_info["key"]
    attribute = await request.app[DATABASE].read(
        attribute_queries.get_attribute, company, key
    )
    if attribute is None:
        raise not_found("attribute", key)
    return json_response(attributes.public(attribute))


@routes.put("/api/v1/attributes/{key}")
async def update_attribute(request: web.Request) -> web.Response:
    company = await company_id(request)
    key = request.match_info["key"]
    item = attributes.parse_put(key, await read_json(request))
    change = await request.app[DATABASE].transaction(
        attribute_queries.update_attribute, company, item
    )
    if change is None:
        raise not_found("attribute", key)
    request.app[SCHEDULER].notify(change.queued)
    return json_response(attributes.public(change.attribute))


@routes.post("/api/v1/attributes/{key}/rename")
async def rename_attribute(request: web.Request) -> web.Response:
    company = await company_id(request)
    key = request.match_info["key"]
    new_key = attributes.parse_rename(await read_json(request))
    try:
        change = await request.app[DATABASE].transaction(
            attribute_queries.rename_attribute, company, key, new_key
        )
    except attribute_queries.KeyTaken:
        raise ApiError(
            409,
            f"attribute key {new_key!r} is already in use; choose another new_key",
            extra={"field": "new_key"},
        ) from None
    if change is None:
        raise not_found("attribute", key)
    request.app[SCHEDULER].notify(change.queued)
    return json_response(attributes.public(change.attribute))


@routes.delete("/api/v1/attributes/{key}")
async def delete_attribute(request: web.Request) -> web.Response:
    company = await company_id(request)
    key = request.match_info["key"]
    change = await request.app[DATABASE].transaction(
        attribute_queries.delete_attribute, company, key
    )
    if change is None:
        raise not_found("attribute", key)
    request.app[SCHEDULER].notify(change.queued)
    return web.Response(status=204)
