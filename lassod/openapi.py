"""The OpenAPI 3.1 document of the public API, served at /api/v1/openapi.json.

docs/openapi.json is this document written out; regenerate it with
`python -m lassod.openapi > docs/openapi.json` after changing the API.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from lassod import __version__

Schema = dict[str, Any]

_ERROR_STATUSES = {
    "400": "Malformed JSON or request",
    "401": "Missing or invalid API key",
    "404": "Not found, or owned by another company",
    "409": "Conflicts with the current state",
    "413": "Request body too large",
    "422": "A field breaks a rule; `field` names it",
    "429": "Rate limited; see Retry-After",
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def string(max_length: int = 1000, **extra: Any) -> Schema:
    return {"type": "string", "maxLength": max_length, **extra}


TIME = {"type": "string", "format": "date-time"}
_PORT = (
    "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
)
_URL_TEXT = "[^\\s\\u0000-\\u001f\\u007f\\u0085\\ufeff"
# What webhook_url accepts: http or https, a host, an optional port from 1 to
# 65535, no user info, no spaces or control characters. Bracketed IPv6 hosts
# are accepted too but left out here.
URL = string(
    2048,
    pattern=f"^https?://{_URL_TEXT}/?#@:\\[\\]]+(:{_PORT})?([/?#]{_URL_TEXT}]*)?$",
)
HEADER_NAME = string(256, minLength=1, pattern="^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
HEADER_VALUE = string(4096, minLength=1, pattern="^[\\t -~]*$")


def obj(properties: dict[str, Schema], required: list[str] | None = None, *, closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


def page_of(item: str) -> Schema:
    return obj(
        {
            "data": {"type": "array", "items": ref(item)},
            "pagination": ref("Pagination"),
        },
        ["data", "pagination"],
    )


SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "status_code": {"type": "integer"},
            "error_type": {
                "enum": [
                    "invalid_request", "unauthenticated", "forbidden", "not_found",
                    "conflict", "payload_too_large", "validation_error", "rate_limited",
                    "internal_error",
                ]
            },
            "message": {"type": "string"},
            "request_id": nullable({"type": "string"}),
            "field": {"type": "string"},
            "code": {"type": "string"},
        },
        ["status_code", "error_type", "message", "request_id"],
        closed=False,
    ),
    "Pagination": obj(
        {
            "page": {"type": "integer", "minimum": 1},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100},
            "total": {"type": "integer", "minimum": 0},
        },
        ["page", "limit", "total"],
    ),
    "Table": obj(
        {
            "id": {"type": "string", "pattern": "^tbl_"},
            "name": {"type": "string"},
            "schema_id": {"type": "string"},
            "status": {"enum": ["queued", "processing", "completed", "failed"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "total_rows": nullable({"type": "integer", "minimum": 0}),
            "error_message": nullable({"type": "string"}),
            "webhook_url": nullable({"type": "string"}),
            "webhook_auth_header_name": nullable({"type": "string"}),
            "has_webhook_secret": {"type": "boolean"},
            "webhook_status": {"enum": ["none", "pending", "succeeded", "abandoned", "cancelled"]},
            "webhook_last_attempt_at": nullable(TIME),
            "created_at": TIME,
            "updated_at": TIME,
        },
        [
            "id", "name", "schema_id", "status", "progress", "total_rows",
            "error_message", "webhook_url", "webhook_auth_header_name",
            "has_webhook_secret", "webhook_status", "webhook_last_attempt_at",
            "created_at", "updated_at",
        ],
    ),
    "NewTable": obj(
        {
            "name": string(256, minLength=1),
            "schema_id": string(256, minLength=1),
            "file_ids": {"type": "array", "items": string(256, minLength=1), "minItems": 1, "maxItems": 100},
            "file_urls": {"type": "array", "items": URL, "minItems": 1, "maxItems": 100},
            "source_text": string(100_000, minLength=1),
            "additional_context": string(10_000, minLength=1),
            "webhook_url": URL,
            "webhook_secret": string(1024, minLength=1),
            "webhook_auth_header_name": HEADER_NAME,
            "webhook_auth_header_value": HEADER_VALUE,
        },
        ["name", "schema_id"],
    )
    | {
        "oneOf": [
            {"required": ["file_ids"]},
            {"required": ["file_urls"]},
            {"required": ["source_text"]},
        ],
        "dependentRequired": {
            "webhook_secret": ["webhook_url"],
            "webhook_auth_header_name": ["webhook_url", "webhook_auth_header_value"],
            "webhook_auth_header_value": ["webhook_auth_header_name"],
        },
    },
    "StatusReport": obj(
        {
            "status": {"enum": ["queued", "processing", "completed", "failed"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "total_rows": {"type": "integer", "minimum": 0, "maximum": 2**53},
            "error_message": string(10_000, minLength=1),
        },
        ["status"],
    ),
}


def operation(
    summary: str,
    responses: dict[str, tuple[str, Schema | None]],
    *,
    body: Schema | None = None,
    parameters: list[Schema] | None = None,
    errors: tuple[str, ...] = ("400", "401", "413", "422", "429"),
    public: bool = False,
) -> Schema:
    result: Schema = {"summary": summary, "responses": {}}
    for status, (description, schema) in responses.items():
        entry: Schema = {"description": description}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": schema}}
        result["responses"][status] = entry
    for status in errors:
        result["responses"][status] = {
            "description": _ERROR_STATUSES[status],
            "content": {"application/json": {"schema": ref("Error")}},
        }
    if body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if parameters:
        result["parameters"] = parameters
    if public:
        result["security"] = []
    return result


def path_parameter(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": string(256)}


def query_parameter(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGINATION_PARAMETERS = [
    query_parameter("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000}),
    query_parameter("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
]


def table_paths() -> dict[str, Schema]:
    table_id = [path_parameter("table_id")]
    return {
        "/api/v1/tables": {
            "post": operation(
                "Create a table", {"201": ("The table", ref("Table"))}, body=ref("NewTable")
            ),
            "get": operation(
                "List tables, newest first",
                {"200": ("A page of tables", page_of("Table"))},
                parameters=PAGINATION_PARAMETERS,
                errors=("401", "422", "429"),
            ),
        },
        "/api/v1/tables/{table_id}": {
            "get": operation(
                "Get a table",
                {"200": ("The table", ref("Table"))},
                parameters=table_id,
                errors=("401", "404", "429"),
            ),
        },
        "/api/v1/tables/{table_id}/status": {
            "post": operation(
                "Report a table's extraction status",
                {"200": ("The updated table", ref("Table"))},
                body=ref("StatusReport"),
                parameters=table_id,
                errors=("400", "401", "404", "409", "413", "422", "429"),
            ),
        },
    }


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
    paths.update(table_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lasso API (lassod)",
            "version": __version__,
            "description": "Tables, catalog and webhook deliveries. Errors share one JSON format.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    }


def dumps() -> bytes:
    return orjson.dumps(build(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(dumps())
