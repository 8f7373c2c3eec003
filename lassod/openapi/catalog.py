"""The catalog part of the OpenAPI document: attributes and products."""

from __future__ import annotations

from lassod.catalog.attributes import MAX_BULK, MAX_KEY_LENGTH, MAX_VALUES, TYPES
from lassod.catalog.products import MAX_CHANGES_PAGE_SIZE, STATUSES
from lassod.openapi.schema import (
    BODY_ERRORS,
    LIST_ERRORS,
    PAGINATION_PARAMETERS,
    READ_ERRORS,
    TIME,
    TIME_INPUT,
    Schema,
    all_required,
    no_content,
    nullable,
    obj,
    operation,
    page_of,
    path_parameter,
    query_parameter,
    ref,
    string,
)

KEY = string(MAX_KEY_LENGTH, pattern="^[A-Za-z][A-Za-z0-9_]*$")
_VALUES = nullable(
    {
        "type": "array",
        "items": string(1000, minLength=1),
        "maxItems": MAX_VALUES,
        "uniqueItems": True,
    }
)
_MUTABLE = {
    "label": string(256, minLength=1),
    "enum_values": _VALUES,
    "tags_values": _VALUES,
    "description": nullable(string(10_000, minLength=1))
    | {"description": "Null clears the description of an existing attribute"},
    "is_reviewed": {"type": "boolean"},
}
# A type other than enum takes no enum_values. Whether an enum attribute has
# its enum_values depends on what is stored, which a schema cannot express,
# so the API checks that and responds 422.
_ENUM_RULE = {
    "if": {"properties": {"type": {"not": {"const": "enum"}}}, "required": ["type"]},
    "then": {"properties": {"enum_values": {"type": "null"}}},
}
_TYPE_NOTE = (
    "The type of an existing attribute cannot change (422, field type)."
    " An enum attribute needs enum_values, from the request or stored; other"
    " types take none (422, field enum_values). An update may leave type out."
)
# Any JSON value but null, which is how a PATCH removes an attribute.
_VALUE = {"type": ["string", "number", "boolean", "array", "object"]}

SCHEMAS: dict[str, Schema] = {
    "Attribute": all_required(
        {
            "id": {"type": "string"},
            "key": {"type": "string"},
            "label": {"type": "string"},
            "type": {"enum": list(TYPES)},
            "enum_values": nullable({"type": "array", "items": {"type": "string"}}),
            "tags_values": nullable({"type": "array", "items": {"type": "string"}}),
            "description": nullable({"type": "string"}),
            "is_reviewed": {"type": "boolean"},
            "created_at": TIME,
            "updated_at": TIME,
        }
    ),
    "AttributeUpsert": obj(
        {"key": KEY, "type": {"enum": list(TYPES)}, **_MUTABLE}, ["key"]
    )
    | _ENUM_RULE
    | {
        "description": "Creates the attribute, or updates it by key. type is"
        " required to create one (422, field type). " + _TYPE_NOTE
    },
    "AttributeBulkUpsert": obj(
        {
            "attributes": {
                "type": "array",
                "items": ref("AttributeUpsert"),
                "minItems": 1,
                "maxItems": MAX_BULK,
                "description": "Each key at most once",
            }
        },
        ["attributes"],
    ),
    "AttributeBulkResult": all_required(
        {
            "data": {"type": "array", "items": ref("Attribute")},
            "created": {"type": "integer", "minimum": 0},
            "updated": {"type": "integer", "minimum": 0},
            "unchanged": {"type": "integer", "minimum": 0},
        }
    ),
    "AttributeChange": obj({"type": {"enum": list(TYPES)}, **_MUTABLE})
    | _ENUM_RULE
    | {"description": _TYPE_NOTE},
    "AttributeRename": obj({"new_key": KEY}, ["new_key"]),
    "Product": all_required(
        {
            "id": {"type": "string"},
            "schema_id": nullable({"type": "string"}),
            "status": {"enum": list(STATUSES)},
            "attributes": {"type": "object", "propertyNames": KEY},
            "created_at": TIME,
            "updated_at": TIME,
        }
    ),
    "NewProduct": obj(
        {
            "schema_id": nullable(string(256, minLength=1)),
            "status": nullable({"enum": list(STATUSES)}),
            "attributes": nullable(
                {
                    "type": "object",
                    "additionalProperties": _VALUE,
                    "description": "Attribute key to value; each key must be in"
                    " the attribute dictionary",
                }
            ),
        }
    ),
    "ProductPatch": obj(
        {
            "schema_id": nullable(string(256, minLength=1))
            | {"description": "Null clears the product's schema_id"},
            "status": nullable({"enum": list(STATUSES)}),
            "attributes": nullable(
                {
                    "type": "object",
                    "description": "Attribute key to value; null removes the key."
                    " Each key given a value must be in the attribute dictionary",
                }
            ),
            "expected_updated_at": TIME_INPUT,
        }
    ),
    "ProductChanges": all_required(
        {
            "products": {"type": "array", "items": ref("Product")},
            "next_cursor": nullable({"type": "string"}),
            "has_more": {"type": "boolean"},
            "sync_timestamp": TIME,
        }
    ),
}
CHANGES_PARAMETERS = [
    query_parameter("since", TIME_INPUT),
    query_parameter(
        "page_size", {"type": "integer", "minimum": 1, "maximum": MAX_CHANGES_PAGE_SIZE}
    ),
    query_parameter(
        "cursor",
        string(256, description="next_cursor of the previous page; overrides since"),
    ),
]


def attribute_paths() -> dict[str, Schema]:
    key = [path_parameter("key")]
    attribute = ("The attribute", ref("Attribute"))
    return {
        "/api/v1/attributes": {
            "post": operation(
                "Create or update one attribute, or up to 500 at once",
                {
                    "200": (
                        "Updated or unchanged; a bulk request gets counts",
                        {"oneOf": [ref("Attribute"), ref("AttributeBulkResult")]},
                    ),
                    "201": ("The created attribute", ref("Attribute")),
                },
                body={"oneOf": [ref("AttributeUpsert"), ref("AttributeBulkUpsert")]},
                errors=(*BODY_ERRORS, "409"),
            ),
            "get": operation(
                "List attributes",
                {"200": ("A page of attributes", page_of("Attribute"))},
                parameters=PAGINATION_PARAMETERS,
                errors=LIST_ERRORS,
            ),
        },
        "/api/v1/attributes/{key}": {
            "get": operation(
                "Get an attribute", {"200": attribute}, parameters=key, errors=READ_ERRORS
            ),
            "put": operation(
                "Update an attribute's fields given in the body",
                {"200": attribute},
                body=ref("AttributeChange"),
                parameters=key,
                errors=(*BODY_ERRORS, "404", "409"),
            ),
            "delete": no_content("Delete an attribute", key, READ_ERRORS),
        },
        "/api/v1/attributes/{key}/rename": {
            "post": operation(
                "Change an attribute's key and move product values to it",
                {"200": attribute},
                body=ref("AttributeRename"),
                parameters=key,
                errors=(*BODY_ERRORS, "404", "409"),
            ),
        },
    }


def product_paths() -> dict[str, Schema]:
    product_id = [path_parameter("product_id")]
    product = ("The product", ref("Product"))
    return {
        "/api/v1/catalog": {
            "post": operation(
                "Create a product", {"201": product}, body=ref("NewProduct")
            ),
            "get": operation(
                "List products",
                {"200": ("A page of products", page_of("Product"))},
                parameters=PAGINATION_PARAMETERS,
                errors=LIST_ERRORS,
            ),
        },
        "/api/v1/catalog/changes": {
            "get": operation(
                "List products changed since a time, oldest change first",
                {"200": ("A page of changed products", ref("ProductChanges"))},
                parameters=CHANGES_PARAMETERS,
                errors=LIST_ERRORS,
            ),
        },
        "/api/v1/catalog/{product_id}": {
            "get": operation(
                "Get a product", {"200": product}, parameters=product_id, errors=READ_ERRORS
            ),
            "patch": operation(
                "Change a product; 409 when it changed after expected_updated_at",
                {"200": product},
                body=ref("ProductPatch"),
                parameters=product_id,
                errors=(*BODY_ERRORS, "404", "409"),
            ),
            "delete": no_content("Delete a product", product_id, READ_ERRORS),
        },
    }
