"""The catalog webhooks part of the OpenAPI document: subscriptions."""

from __future__ import annotations

from lassod.catalog.events import EVENT_NAMES
from lassod.catalog.subscriptions import MAX_SECRET_LENGTH
from lassod.openapi.deliveries import recover_operation
from lassod.openapi.schema import (
    BODY_ERRORS,
    HEADER_VALUE,
    LIST_ERRORS,
    PAGINATION_PARAMETERS,
    READ_ERRORS,
    TIME,
    URL,
    Schema,
    all_required,
    no_content,
    nullable,
    obj,
    operation,
    page_of,
    path_parameter,
    ref,
    string,
)
from lassod.openapi.tables import AUTH_HEADER_NAME

EVENTS = {
    "type": "array",
    "items": {"enum": list(EVENT_NAMES)},
    "minItems": 1,
    "maxItems": len(EVENT_NAMES) * 2,
}
_SECRET = string(MAX_SECRET_LENGTH, minLength=1)
_DESCRIPTION = string(10_000, minLength=1)
_SUBSCRIPTION = {
    "id": {"type": "string"},
    "url": {"type": "string"},
    "events": {"type": "array", "items": {"enum": list(EVENT_NAMES)}},
    "description": nullable({"type": "string"}),
    "active": {"type": "boolean"},
    "auth_header_name": nullable({"type": "string"}),
    "has_secret": {"type": "boolean"},
    "disabled_reason": nullable(
        {
            "type": "string",
            "description": "Why lassod deactivated the subscription, if it did",
        }
    ),
    "created_at": TIME,
    "updated_at": TIME,
}
_HEADER_PAIR = {
    "auth_header_name": ["auth_header_value"],
    "auth_header_value": ["auth_header_name"],
}

SCHEMAS: dict[str, Schema] = {
    "Subscription": all_required(_SUBSCRIPTION),
    "CreatedSubscription": all_required(
        _SUBSCRIPTION,
        secret={
            "type": "string",
            "description": "Shown only in this response; generated when not given",
        },
    ),
    "NewSubscription": obj(
        {
            "url": URL,
            "events": EVENTS,
            "description": nullable(_DESCRIPTION),
            "active": {"type": "boolean"},
            "secret": _SECRET,
            "auth_header_name": AUTH_HEADER_NAME,
            "auth_header_value": HEADER_VALUE,
        },
        ["url", "events"],
    )
    | {"dependentRequired": _HEADER_PAIR},
    "SubscriptionChange": obj(
        {
            "url": URL,
            "events": EVENTS,
            "description": nullable(_DESCRIPTION),
            "active": {"type": "boolean"},
            "secret": nullable(_SECRET),
            "auth_header_name": nullable(AUTH_HEADER_NAME),
            "auth_header_value": nullable(HEADER_VALUE),
        }
    )
    | {
        "description": "Null clears the description, the secret or the auth"
        " header; the auth header name and value change together.",
        "minProperties": 1,
        "dependentRequired": _HEADER_PAIR,
        "anyOf": [
            {
                "properties": {
                    "auth_header_name": {"type": "null"},
                    "auth_header_value": {"type": "null"},
                }
            },
            {
                "properties": {
                    "auth_header_name": {"type": "string"},
                    "auth_header_value": {"type": "string"},
                }
            },
        ],
    },
}


def paths() -> dict[str, Schema]:
    subscription_id = [path_parameter("subscription_id")]
    subscription = ("The subscription", ref("Subscription"))
    return {
        "/api/v1/catalog/webhooks": {
            "post": operation(
                "Subscribe a URL to catalog events",
                {"201": ("The subscription and its secret", ref("CreatedSubscription"))},
                body=ref("NewSubscription"),
            ),
            "get": operation(
                "List subscriptions",
                {"200": ("A page of subscriptions", page_of("Subscription"))},
                parameters=PAGINATION_PARAMETERS,
                errors=LIST_ERRORS,
            ),
        },
        "/api/v1/catalog/webhooks/{subscription_id}": {
            "get": operation(
                "Get a subscription",
                {"200": subscription},
                parameters=subscription_id,
                errors=READ_ERRORS,
            ),
            "patch": operation(
                "Change a subscription",
                {"200": subscription},
                body=ref("SubscriptionChange"),
                parameters=subscription_id,
                errors=(*BODY_ERRORS, "404"),
            ),
            "delete": no_content(
                "Delete a subscription and cancel its pending deliveries",
                subscription_id,
                READ_ERRORS,
            ),
        },
        "/api/v1/catalog/webhooks/{subscription_id}/recover": {
            "post": recover_operation("subscription", "subscription_id"),
        },
    }
