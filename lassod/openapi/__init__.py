"""The OpenAPI 3.1 document of the public API, served at /api/v1/openapi.json.

docs/openapi.json is this document written out; regenerate it with
`python -m lassod.openapi > docs/openapi.json` after changing the API.
"""

from __future__ import annotations

import orjson

from lassod import __version__
from lassod.openapi import catalog, deliveries, subscriptions, tables
from lassod.openapi.schema import COMMON_SCHEMAS, Schema, operation


def build() -> Schema:
    """Return the whole document."""
    paths: dict[str, Schema] = {
        "/api/v1/openapi.json": {
            "get": operation(
                "This document",
                {"200": ("The OpenAPI document", {"type": "object"})},
                errors=(),
                public=True,
            )
        }
    }
    for part in (
        tables.paths(),
        deliveries.paths(),
        catalog.attribute_paths(),
        catalog.product_paths(),
        subscriptions.paths(),
    ):
        paths.update(part)
    schemas = COMMON_SCHEMAS | tables.SCHEMAS | deliveries.SCHEMAS
    schemas |= catalog.SCHEMAS | subscriptions.SCHEMAS
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lasso API (lassod)",
            "version": __version__,
            "description": "Tables, catalog and webhook deliveries."
            " Errors share one JSON format.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    }


def dumps() -> bytes:
    """Return the document as indented JSON with sorted keys."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    return orjson.dumps(build(), option=option) + b"\n"
