"""Handlers for /api/v1/catalog, the catalog products and their changes feed."""

from __future__ import annotations

from aiohttp import web

from lassod.catalog import products
from lassod.clock import iso_us
from lassod.store import products as product_queries
from lassod.web.common import (
    PAGE_PARAMETERS,
    company_id,
    page_of,
    query_of,
    read_json,
    reject_unknown_query,
)
from lassod.web.errors import ApiError, json_response, not_found
from lassod.web.state import DATABASE, SCHEDULER

routes = web.RouteTableDef()


# Product ids never take the name of a sibling route, so a method those routes
# lack gets 405 with their own Allow header rather than reaching a product.
PRODUCT_PATH = "/api/v1/catalog/{product_id:(?!changes$|webhooks$)[^{}/]+}"

CHANGES_PARAMETERS = ("since", "cursor", "page_size")


@routes.get("/api/v1/catalog/changes")
async def list_changes(request: web.Request) -> web.Response:
    """List products changed since a time, oldest change first, by cursor."""
    company = await company_id(request)
    reject_unknown_query(request, CHANGES_PARAMETERS)
    query = products.parse_changes_query(query_of(request))
    # This read stays on the writer's connection, behind any group commit,
    # because the feed's sync time must not pass a write that is stamped
    # but not yet committed.
    page = await request.app[DATABASE].read(
        product_queries.list_changes, company, query
    )
    last = page.products[-1] if page.products else None
    return json_response(
        {
            "products": [products.public(product) for product in page.products],
            "next_cursor": products.encode_cursor(last)
            if page.has_more and last
            else None,
            "has_more": page.has_more,
            "sync_timestamp": iso_us(page.sync_us),
        }
    )


@routes.post("/api/v1/catalog")
async def create_product(request: web.Request) -> web.Response:
    company = await company_id(request)
    new = products.parse_new(await read_json(request))
    change = await request.app[DATABASE].transaction(
        product_queries.insert_product, company, new
    )
    request.app[SCHEDULER].notify(change.queued)
    return json_response(products.public(change.product), status=201)


@routes.get("/api/v1/catalog")
async def list_products(request: web.Request) -> web.Response:
    company = await company_id(request)
    reject_unknown_query(request, PAGE_PARAMETERS)
    page = page_of(request)
    rows, total = await request.app[DATABASE].read(
        product_queries.list_products, company, page.offset, page.limit
    )
    return json_response(page.render([products.public(row) for row in rows], total))


@routes.get(PRODUCT_PATH)
async def get_product(request: web.Request) -> web.Response:
    company = await company_id(request)
    product_id = request.match_info["product_id"]
    product = await request.app[DATABASE].read(
        product_queries.get_product, company, product_id
    )
    if product is None:
        raise not_found("product", product_id)
    return json_response(products.public(product))


@routes.patch(PRODUCT_PATH)
async def patch_product(request: web.Request) -> web.Response:
    company = await company_id(request)
    product_id = request.match_info["product_id"]
    patch = products.parse_patch(await read_json(request))
    change = await request.app[DATABASE].transaction(
        product_queries.patch_product, company, product_id, patch
    )
    if change is None:
        raise not_found("product", product_id)
    if change.result == "stale":
        current = iso_us(change.product.updated_us)
        raise ApiError(
            409,
            f"product {product_id!r} changed at {current}, after expected_updated_at; "
            "read it again and reapply the change",
            extra={"code": "stale_write", "updated_at": current},
        )
    request.app[SCHEDULER].notify(change.queued)
    return json_response(products.public(change.product))


@routes.delete(PRODUCT_PATH)
async def delete_product(request: web.Request) -> web.Response:
    company = await company_id(request)
    product_id = request.match_info["product_id"]
    change = await request.app[DATABASE].transaction(
        product_queries.delete_product, company, product_id
    )
    if change is None:
        raise not_found("product", product_id)
    request.app[SCHEDULER].notify(change.queued)
    return web.Response(status=204)
