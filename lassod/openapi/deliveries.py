"""The deliveries part of the OpenAPI document: history, redelivery, recovery."""

from __future__ import annotations

from lassod.openapi.schema import (
    BODY_ERRORS,
    PAGINATION_PARAMETERS,
    READ_ERRORS,
    TIME,
    TIME_INPUT,
    Schema,
    all_required,
    nullable,
    obj,
    operation,
    page_of,
    path_parameter,
    query_parameter,
    ref,
    string,
)

DELIVERY_STATUSES = ["pending", "succeeded", "abandoned", "cancelled"]
_NULLABLE_TEXT = nullable({"type": "string"})
_DELIVERY = {
    "id": {"type": "string"},
    "event": all_required({"id": {"type": "string"}, "name": {"type": "string"}}),
    "endpoint_kind": nullable({"enum": ["table", "subscription"]}),
    "table_id": _NULLABLE_TEXT,
    "subscription_id": _NULLABLE_TEXT,
    "url": _NULLABLE_TEXT,
    "status": {"enum": DELIVERY_STATUSES},
    "reason": _NULLABLE_TEXT,
    "attempt_count": {"type": "integer", "minimum": 0},
    "next_attempt_at": nullable(TIME),
    "last_attempt_at": nullable(TIME),
    "redelivery_of": _NULLABLE_TEXT,
    "created_at": TIME,
    "updated_at": TIME,
}
_NULLABLE_INTEGER = nullable({"type": "integer"})

SCHEMAS: dict[str, Schema] = {
    "Delivery": all_required(_DELIVERY),
    "DeliveryDetail": all_required(
        _DELIVERY
        | {
            "event": all_required(
                {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "body": {"type": "object", "description": "The event as sent"},
                }
            ),
            "attempts": {"type": "array", "items": ref("Attempt")},
        }
    ),
    "Attempt": all_required(
        {
            "number": {"type": "integer", "minimum": 1},
            "attempt_id": {"type": "string"},
            "started_at": TIME,
            "duration_ms": _NULLABLE_INTEGER,
            "status_code": _NULLABLE_INTEGER,
            "error_kind": _NULLABLE_TEXT,
            "response_excerpt": _NULLABLE_TEXT,
            "outcome": {"enum": ["succeeded", "failed", "interrupted", "in_flight"]},
        }
    ),
    "Window": obj(
        {"since": TIME_INPUT, "until": TIME_INPUT},
        ["since"],
    )
    | {
        "description": "Abandoned deliveries created from since (inclusive) to"
        " until (exclusive); until must be later than since."
    },
    "Recovered": all_required(
        {
            "queued": {"type": "integer", "minimum": 0},
            "delivery_ids": {"type": "array", "items": {"type": "string"}},
        }
    ),
}

_ID_FILTER = string(256, minLength=1)
FILTER_PARAMETERS = [
    query_parameter("table_id", _ID_FILTER),
    query_parameter("subscription_id", _ID_FILTER),
    query_parameter("event", _ID_FILTER),
    query_parameter("status", {"enum": DELIVERY_STATUSES}),
    query_parameter("since", TIME_INPUT),
    query_parameter("until", TIME_INPUT),
]


def paths() -> dict[str, Schema]:
    delivery_id = [path_parameter("delivery_id")]
    return {
        "/api/v1/deliveries": {
            "get": operation(
                "List deliveries, newest first",
                {"200": ("A page of deliveries", page_of("Delivery"))},
                parameters=FILTER_PARAMETERS + PAGINATION_PARAMETERS,
                errors=("401", "422", "429"),
            ),
        },
        "/api/v1/deliveries/{delivery_id}": {
            "get": operation(
                "Get a delivery with its event body and attempts",
                {"200": ("The delivery", ref("DeliveryDetail"))},
                parameters=delivery_id,
                errors=READ_ERRORS,
            ),
        },
        "/api/v1/deliveries/{delivery_id}/redeliver": {
            "post": operation(
                "Queue a new delivery of the same event to the same endpoint",
                {"201": ("The new delivery", ref("DeliveryDetail"))},
                parameters=delivery_id,
                errors=(*READ_ERRORS, "409"),
            ),
        },
    }


def recover_operation(owner: str, parameter: str) -> Schema:
    """Return the operation that queues again an owner's abandoned deliveries."""
    return operation(
        f"Queue again the {owner}'s deliveries abandoned in a time window",
        {"202": ("What was queued", ref("Recovered"))},
        body=ref("Window"),
        parameters=[path_parameter(parameter)],
        errors=(*BODY_ERRORS, "404", "409"),
    )
