"""Deliveries: list filters, redeliver windows and the public delivery object."""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from lassod import validation as check
from lassod.clock import iso_ms, parse_iso
from lassod.store.history import AttemptRow, DeliveryDetail, DeliveryFilter, DeliveryRow
from lassod.validation import ValidationError

STATUSES = ("pending", "succeeded", "abandoned", "cancelled")
TABLE_ID_PREFIX = "tbl_"
FILTER_FIELDS = ("table_id", "subscription_id", "event", "status", "since", "until")
PAGE_FIELDS = ("page", "limit")
WINDOW_FIELDS = {"since", "until"}
_TIME_EXAMPLE = "an ISO 8601 time with a zone such as 2026-01-01T00:00:00Z"


def parse_filter(query: Mapping[str, str], company_id: str | None) -> DeliveryFilter:
    """Check the query of GET /api/v1/deliveries; raises ValidationError."""
    for name in query:
        if name not in FILTER_FIELDS and name not in PAGE_FIELDS:
            allowed = ", ".join(FILTER_FIELDS + PAGE_FIELDS)
            raise ValidationError(
                name, f"unknown query parameter; allowed are {allowed}"
            )
    table_id = _query_text(query, "table_id")
    subscription_id = _query_text(query, "subscription_id")
    if table_id is not None and subscription_id is not None:
        raise ValidationError(
            "subscription_id", "give at most one of table_id and subscription_id"
        )
    # Table ids start with tbl_ and subscription ids are UUIDs, so an id
    # given under the other name would otherwise match the other kind.
    if table_id is not None and not table_id.startswith(TABLE_ID_PREFIX):
        raise ValidationError(
            "table_id",
            f"must be a table id, which starts with {TABLE_ID_PREFIX!r};"
            " filter a subscription's deliveries with subscription_id",
        )
    if subscription_id is not None and subscription_id.startswith(TABLE_ID_PREFIX):
        raise ValidationError(
            "subscription_id",
            "is a table id; filter a table's deliveries with table_id",
        )
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationError(
            "status", f"must be one of {', '.join(STATUSES)}, got {status!r}"
        )
    since_ms = parse_time("since", query.get("since"))
    until_ms = parse_time("until", query.get("until"))
    _check_order(since_ms, until_ms)
    return DeliveryFilter(
        company_id=company_id,
        endpoint_id=table_id if table_id is not None else subscription_id,
        event_name=_query_text(query, "event"),
        status=status,
        since_ms=since_ms,
        until_ms=until_ms,
    )


def parse_window(body: Any) -> tuple[int, int | None]:
    """Check a {"since", "until"?} body; return (since_ms, until_ms or None)."""
    body = check.ensure_object(body)
    check.reject_unknown(body, WINDOW_FIELDS)
    since_ms = parse_time(
        "since", check.text(body, "since", required=True, max_length=64)
    )
    until_ms = parse_time("until", check.text(body, "until", max_length=64))
    if since_ms is None:
        raise ValidationError("since", f"is required and must be {_TIME_EXAMPLE}")
    _check_order(since_ms, until_ms)
    return since_ms, until_ms


def parse_time(field: str, text: str | None) -> int | None:
    """Parse an ISO 8601 time with a zone into Unix milliseconds."""
    if text is None:
        return None
    try:
        return parse_iso(text) // 1000
    except (ValueError, OverflowError):
        raise ValidationError(field, f"must be {_TIME_EXAMPLE}, got {text!r}") from None


def _check_order(since_ms: int | None, until_ms: int | None) -> None:
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise ValidationError("until", "must be later than since")


def _query_text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if not value or len(value) > 256:
        raise ValidationError(name, "must be 1 to 256 characters")
    return value


def public(row: DeliveryRow) -> dict[str, Any]:
    """Render the delivery object of a list."""
    return {
        "id": row.id,
        "event": {"id": row.event_id, "name": row.event_name},
        "endpoint_kind": row.endpoint_kind,
        "table_id": row.endpoint_id if row.endpoint_kind == "table" else None,
        "subscription_id": row.endpoint_id
        if row.endpoint_kind == "subscription"
        else None,
        "url": row.url,
        "status": row.status,
        "reason": row.reason,
        "attempt_count": row.attempt_count,
        "next_attempt_at": _iso(row.next_due_ms),
        "last_attempt_at": _iso(row.last_attempt_ms),
        "redelivery_of": row.redelivery_of,
        "created_at": iso_ms(row.created_ms),
        "updated_at": iso_ms(row.updated_ms),
    }


def public_detail(detail: DeliveryDetail) -> dict[str, Any]:
    """Render one delivery with its event body and every attempt."""
    rendered = public(detail.delivery)
    rendered["event"]["body"] = orjson.loads(detail.body)
    rendered["attempts"] = [_attempt(attempt) for attempt in detail.attempts]
    return rendered


def _attempt(attempt: AttemptRow) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "attempt_id": attempt.attempt_id,
        "started_at": iso_ms(attempt.started_ms),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "error_kind": attempt.error_kind,
        "response_excerpt": attempt.response_excerpt,
        "outcome": attempt.outcome or "in_flight",
    }


def _iso(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else iso_ms(epoch_ms)
