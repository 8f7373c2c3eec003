"""Building blocks of the OpenAPI document: schema helpers and operations."""

from __future__ import annotations

from typing import Any

from lassod.validation import MAX_HOST_LENGTH

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


# The error statuses most operations share.
AUTH_ERRORS = ("401", "429")
READ_ERRORS = ("401", "404", "429")
LIST_ERRORS = ("401", "422", "429")
BODY_ERRORS = ("400", "401", "413", "422", "429")


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def string(max_length: int = 1000, **extra: Any) -> Schema:
    return {"type": "string", "maxLength": max_length, **extra}


TIME = {"type": "string", "format": "date-time"}
# A time the client sends: ISO 8601 with a zone, as the validators parse it.
TIME_INPUT = string(64, format="date-time")
ID = {"type": "string"}
_PORT = (
    "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
)
_LABEL = "[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The webhook_url form that the API always accepts: http or https, an ASCII
# host name of any number of labels, an optional port from 1 to 65535, and
# printable ASCII after it. The API also accepts IP literals that are not
# blocked, bracketed IPv6 hosts and international names, which this pattern
# leaves out. The lookahead caps the host name at the API's 253 characters.
URL = string(
    2048,
    pattern=(
        f"^https?://(?![A-Za-z0-9.-]{{{MAX_HOST_LENGTH + 1}}})"
        f"{_LABEL}(?:\\.{_LABEL})*(:{_PORT})?([/?#][!-~]*)?$"
    ),
)
HEADER_NAME = string(256, minLength=1, pattern="^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
HEADER_VALUE = string(4096, minLength=1, pattern="^[\\t -~]*$")


def obj(
    properties: dict[str, Schema],
    required: list[str] | None = None,
    *,
    closed: bool = True,
) -> Schema:
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


COMMON_SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "status_code": {"type": "integer"},
            "error_type": {
                "enum": [
                    "invalid_request", "unauthenticated", "forbidden", "not_found",
                    "conflict", "payload_too_large", "validation_error", "rate_limited",
                    "internal_error", "unavailable",
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




def all_required(properties: dict[str, Schema], **extra: Schema) -> Schema:
    """Return a closed object schema that requires every one of its properties."""
    return obj(properties | extra, [*properties, *extra])


def no_content(summary: str, parameters: list[Schema], errors: tuple[str, ...]) -> Schema:
    return operation(summary, {"204": ("Done; no body", None)}, parameters=parameters, errors=errors)
