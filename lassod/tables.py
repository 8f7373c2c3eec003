"""Tables: request checks, status transitions and the public table object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lassod import validation as check
from lassod.clock import iso_ms, iso_us
from lassod.config import SecuritySettings
from lassod.validation import ValidationError

STATUSES = ("queued", "processing", "completed", "failed")
TERMINAL = ("completed", "failed")
_RANK = {"queued": 0, "processing": 1, "completed": 2, "failed": 2}

CREATE_FIELDS = {
    "schema_id",
    "name",
    "file_ids",
    "file_urls",
    "source_text",
    "additional_context",
    "webhook_url",
    "webhook_secret",
    "webhook_auth_header_name",
    "webhook_auth_header_value",
}
STATUS_FIELDS = {"status", "progress", "total_rows", "error_message"}
WEBHOOK_FIELDS = {
    "webhook_url",
    "webhook_secret",
    "webhook_auth_header_name",
    "webhook_auth_header_value",
}
SOURCE_FIELDS = ("file_ids", "file_urls", "source_text")


@dataclass(frozen=True)
class NewTable:
    name: str
    schema_id: str
    source: dict[str, Any]
    additional_context: str | None
    webhook_url: str | None
    # Kept out of repr so that no log line or traceback shows them.
    webhook_secret: str | None = field(repr=False)
    auth_header_name: str | None
    auth_header_value: str | None = field(repr=False)


@dataclass(frozen=True)
class WebhookChange:
    """A PATCH of a table's webhook.

    Only the parts named in `changed` (url, secret, auth_header) change. A
    changed part set to None is removed. Removing the url removes the whole
    webhook.
    """

    changed: frozenset[str]
    url: str | None = None
    secret: str | None = None
    auth_header_name: str | None = None
    auth_header_value: str | None = None


@dataclass(frozen=True)
class StatusReport:
    status: str
    progress: float | None
    total_rows: int | None
    error_message: str | None


@dataclass(frozen=True)
class TableRow:
    id: str
    company_id: str
    name: str
    schema_id: str
    status: str
    progress: float
    total_rows: int | None
    error_message: str | None
    created_us: int
    updated_us: int
    webhook_url: str | None
    auth_header_name: str | None
    has_secret: bool
    webhook_status: str
    webhook_last_attempt_ms: int | None


def parse_new_table(body: Any, security: SecuritySettings) -> NewTable:
    """Check a POST /api/v1/tables body; raises ValidationError."""
    body = check.ensure_object(body)
    check.reject_unknown(body, CREATE_FIELDS)
    name = check.text(body, "name", required=True, max_length=256)
    schema_id = check.text(body, "schema_id", required=True, max_length=256)

    given = [field for field in SOURCE_FIELDS if field in body]
    if len(given) != 1:
        raise ValidationError(
            "file_ids",
            "exactly one of file_ids, file_urls or source_text is required"
            + (f", got {', '.join(given)}" if given else ""),
        )
    source_field = given[0]
    if source_field == "source_text":
        source_value: Any = check.text(body, "source_text", max_length=100_000)
    else:
        item_length = 256 if source_field == "file_ids" else check.MAX_URL_LENGTH
        source_value = check.string_list(
            body, source_field, max_items=100, max_length=item_length
        )
        if source_field == "file_urls":
            for index, url in enumerate(source_value or []):
                check.webhook_url(f"file_urls[{index}]", url)
    additional_context = check.text(body, "additional_context", max_length=10_000)

    url = check.text(body, "webhook_url", max_length=check.MAX_URL_LENGTH)
    if url is not None:
        check.target_url("webhook_url", url, security)
    secret = check.text(body, "webhook_secret", max_length=1024)
    header_name, header_value = check.header_pair(
        body, "webhook_auth_header_name", "webhook_auth_header_value"
    )
    if url is None and (secret is not None or header_name is not None):
        raise ValidationError(
            "webhook_url", "is required when a webhook secret or auth header is given"
        )

    return NewTable(
        name=name or "",
        schema_id=schema_id or "",
        source={source_field: source_value},
        additional_context=additional_context,
        webhook_url=url,
        webhook_secret=secret,
        auth_header_name=header_name,
        auth_header_value=header_value,
    )


def parse_webhook_change(body: Any, security: SecuritySettings) -> WebhookChange:
    """Check a PATCH /api/v1/tables/{id} body; raises ValidationError."""
    body = check.ensure_object(body)
    check.reject_unknown(body, WEBHOOK_FIELDS)
    if not body:
        allowed = ", ".join(sorted(WEBHOOK_FIELDS))
        raise ValidationError("body", f"send at least one of {allowed}")
    changed = set()

    url = check.text(body, "webhook_url", max_length=check.MAX_URL_LENGTH, nullable=True)
    if "webhook_url" in body:
        changed.add("url")
        if url is not None:
            check.target_url("webhook_url", url, security)
    secret = check.text(body, "webhook_secret", max_length=1024, nullable=True)
    if "webhook_secret" in body:
        changed.add("secret")
    header_name, header_value = check.header_pair(
        body, "webhook_auth_header_name", "webhook_auth_header_value", nullable=True
    )
    if "webhook_auth_header_name" in body:
        changed.add("auth_header")

    return WebhookChange(
        changed=frozenset(changed),
        url=url,
        secret=secret,
        auth_header_name=header_name,
        auth_header_value=header_value,
    )


def parse_status_report(body: Any) -> StatusReport:
    """Check a POST /api/v1/tables/{id}/status body; raises ValidationError."""
    body = check.ensure_object(body)
    check.reject_unknown(body, STATUS_FIELDS)
    status = body.get("status")
    if status not in STATUSES:
        raise ValidationError("status", f"is required and must be one of {', '.join(STATUSES)}")
    return StatusReport(
        status=status,
        progress=check.number(body, "progress", minimum=0, maximum=100),
        total_rows=check.integer(body, "total_rows", minimum=0, maximum=2**53),
        error_message=check.text(body, "error_message", max_length=10_000),
    )


def transition(current: str, new: str) -> str:
    """Return apply, noop or conflict for a status report.

    Status only moves forward: queued, processing, then completed or failed.
    Repeating the terminal status is a no-op, so its event is emitted once.
    """
    if current in TERMINAL:
        return "noop" if new == current else "conflict"
    if _RANK[new] < _RANK[current]:
        return "conflict"
    return "apply"


def event_data(table: TableRow) -> dict[str, Any]:
    """Return the `data` of table.completed or table.failed."""
    data: dict[str, Any] = {
        "table_id": table.id,
        "status": table.status,
        "total_rows": table.total_rows,
    }
    if table.status == "failed":
        data["error_message"] = table.error_message
    return data


def public(table: TableRow) -> dict[str, Any]:
    """Render the table object; the secret and header value are write-only."""
    return {
        "id": table.id,
        "name": table.name,
        "schema_id": table.schema_id,
        "status": table.status,
        "progress": table.progress,
        "total_rows": table.total_rows,
        "error_message": table.error_message,
        "webhook_url": table.webhook_url,
        "webhook_auth_header_name": table.auth_header_name,
        "has_webhook_secret": table.has_secret,
        "webhook_status": table.webhook_status,
        "webhook_last_attempt_at": (
            iso_ms(table.webhook_last_attempt_ms)
            if table.webhook_last_attempt_ms is not None
            else None
        ),
        "created_at": iso_us(table.created_us),
        "updated_at": iso_us(table.updated_us),
    }
