"""Handler for the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from lassod import openapi

routes = web.RouteTableDef()
_DOCUMENT = openapi.dumps()


@routes.get("/api/v1/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=_DOCUMENT, content_type="application/json")
