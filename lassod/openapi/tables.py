"""The tables part of the OpenAPI document: tables, their status and webhook."""

from __future__ import annotations

from lassod.openapi.deliveries import recover_operation
from lassod.openapi.schema import (
    HEADER_NAME,
    HEADER_VALUE,
    LIST_ERRORS,
    PAGINATION_PARAMETERS,
    READ_ERRORS,
    TIME,
    URL,
    Schema,
    all_required,
    nullable,
    obj,
    operation,
    page_of,
    path_parameter,
    ref,
    string,
)

TABLE_STATUSES = ["queued", "processing", "completed", "failed"]
SECRET = string(1024, minLength=1)
# A header name lassod sets itself is refused, whatever its case.
_OWN_HEADERS = (
    "content-type", "content-length", "content-encoding", "host", "user-agent",
    "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
    "expect",
)
_OWN_PREFIXES = ("x-lasso-", "webhook-", "proxy-")


def _any_case(text: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in text)


AUTH_HEADER_NAME = HEADER_NAME | {
    "pattern": "^(?!(?:"
    + "|".join(_any_case(name) for name in _OWN_HEADERS)
    + ")$)(?!(?:"
    + "|".join(_any_case(prefix) for prefix in _OWN_PREFIXES)
    + "))[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
}

SCHEMAS: dict[str, Schema] = {
    "Table": all_required(
        {
            "id": {"type": "string", "pattern": "^tbl_"},
            "name": {"type": "string"},
            "schema_id": {"type": "string"},
            "status": {"enum": TABLE_STATUSES},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "total_rows": nullable({"type": "integer", "minimum": 0}),
            "error_message": nullable({"type": "string"}),
            "webhook_url": nullable({"type": "string"}),
            "webhook_auth_header_name": nullable({"type": "string"}),
            "has_webhook_secret": {"type": "boolean"},
            "webhook_status": {
                "enum": ["none", "pending", "succeeded", "abandoned", "cancelled"]
            },
            "webhook_last_attempt_at": nullable(TIME),
            "created_at": TIME,
            "updated_at": TIME,
        }
    ),
    "NewTable": obj(
        {
            "name": string(256, minLength=1),
            "schema_id": string(256, minLength=1),
            "file_ids": {
                "type": "array",
                "items": string(256, minLength=1),
                "minItems": 1,
                "maxItems": 100,
            },
            "file_urls": {"type": "array", "items": URL, "minItems": 1, "maxItems": 100},
            "source_text": string(100_000, minLength=1),
            "additional_context": string(10_000, minLength=1),
            "webhook_url": URL,
            "webhook_secret": SECRET,
            "webhook_auth_header_name": AUTH_HEADER_NAME,
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
    "TableWebhookChange": obj(
        {
            "webhook_url": nullable(URL),
            "webhook_secret": nullable(SECRET),
            "webhook_auth_header_name": nullable(AUTH_HEADER_NAME),
            "webhook_auth_header_value": nullable(HEADER_VALUE),
        }
    )
    | {
        "description": "Null removes a part; a null webhook_url removes the webhook."
        " A secret or auth header needs a webhook_url, given or already set."
        " The auth header name and value change together.",
        "minProperties": 1,
        "dependentRequired": {
            "webhook_auth_header_name": ["webhook_auth_header_value"],
            "webhook_auth_header_value": ["webhook_auth_header_name"],
        },
        # Removing the webhook leaves nothing to attach a secret or header to.
        "if": {"properties": {"webhook_url": {"type": "null"}}, "required": ["webhook_url"]},
        "then": {
            "properties": {
                "webhook_secret": {"type": "null"},
                "webhook_auth_header_name": {"type": "null"},
                "webhook_auth_header_value": {"type": "null"},
            }
        },
        # Both null, or both strings.
        "anyOf": [
            {
                "properties": {
                    "webhook_auth_header_name": {"type": "null"},
                    "webhook_auth_header_value": {"type": "null"},
                }
            },
            {
                "properties": {
                    "webhook_auth_header_name": {"type": "string"},
                    "webhook_auth_header_value": {"type": "string"},
                }
            },
        ],
    },
    "StatusReport": obj(
        {
            "status": {"enum": TABLE_STATUSES},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "total_rows": {"type": "integer", "minimum": 0, "maximum": 2**53},
            "error_message": string(10_000, minLength=1),
        },
        ["status"],
    ),
}


def paths() -> dict[str, Schema]:
    table_id = [path_parameter("table_id")]
    table = ("The table", ref("Table"))
    return {
        "/api/v1/tables": {
            "post": operation(
                "Create a table", {"201": table}, body=ref("NewTable")
            ),
            "get": operation(
                "List tables, newest first",
                {"200": ("A page of tables", page_of("Table"))},
                parameters=PAGINATION_PARAMETERS,
                errors=LIST_ERRORS,
            ),
        },
        "/api/v1/tables/{table_id}": {
            "get": operation(
                "Get a table", {"200": table}, parameters=table_id, errors=READ_ERRORS
            ),
            "patch": operation(
                "Set, change or remove a table's webhook",
                {"200": table},
                body=ref("TableWebhookChange"),
                parameters=table_id,
                errors=("400", "401", "404", "413", "422", "429"),
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
        "/api/v1/tables/{table_id}/redeliver": {
            "post": recover_operation("table", "table_id"),
        },
    }
