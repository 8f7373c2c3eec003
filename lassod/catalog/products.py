"""Products: request checks, attribute merging and the public object."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from lassod import validation as check
from lassod.clock import iso_us, parse_iso
from lassod.validation import ValidationError

STATUSES = ("draft", "active", "archived")
CREATE_FIELDS = {"schema_id", "status", "attributes"}
PATCH_FIELDS = {"schema_id", "status", "attributes", "expected_updated_at"}
DEFAULT_CHANGES_PAGE_SIZE = 100
MAX_CHANGES_PAGE_SIZE = 1000
# A product's attributes as stored JSON. Each write sends the whole product
# in its event, and list pages hold up to 100 products, so this bounds the
# memory one request can take.
MAX_ATTRIBUTES_BYTES = 256 * 1024
# A changes-feed page ends early, with has_more, once its products' stored
# attributes reach this many bytes. It always contains at least one product.
MAX_CHANGES_PAGE_BYTES = 4 * 1024 * 1024
# Marks a field the PATCH body leaves alone, as opposed to setting it to null.
UNSET: Any = object()


@dataclass(frozen=True)
class ProductRow:
    id: str
    company_id: str
    schema_id: str | None
    status: str
    attributes: dict[str, Any]
    created_us: int
    updated_us: int


@dataclass(frozen=True)
class NewProduct:
    schema_id: str | None
    status: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ProductPatch:
    """A checked PATCH body. attributes maps a key to a value, or None to remove."""

    schema_id: Any
    status: str | None
    attributes: dict[str, Any]
    expected_updated_us: int | None


@dataclass(frozen=True)
class ChangesQuery:
    """A changes-feed request: list products after `after` = (updated_us, id)."""

    after: tuple[int, str]
    page_size: int


def parse_new(body: Any) -> NewProduct:
    """Check a POST /api/v1/catalog body."""
    body = check.ensure_object(body)
    check.reject_unknown(body, CREATE_FIELDS)
    attributes = _attributes(body)
    for key, value in attributes.items():
        if value is None:
            raise ValidationError(
                f"attributes.{key}", "must not be null; leave the key out"
            )
    return NewProduct(
        schema_id=check.text(body, "schema_id", max_length=256, nullable=True),
        status=_status(body) or "draft",
        attributes=attributes,
    )


def parse_patch(body: Any) -> ProductPatch:
    """Check a PATCH /api/v1/catalog/{id} body."""
    body = check.ensure_object(body)
    check.reject_unknown(body, PATCH_FIELDS)
    expected = check.text(body, "expected_updated_at", max_length=64)
    return ProductPatch(
        schema_id=check.text(body, "schema_id", max_length=256, nullable=True)
        if "schema_id" in body
        else UNSET,
        status=_status(body),
        attributes=_attributes(body),
        expected_updated_us=None
        if expected is None
        else _instant("expected_updated_at", expected),
    )


def merge(
    product: ProductRow, patch: ProductPatch
) -> tuple[str | None, str, dict[str, Any]]:
    """Return (schema_id, status, attributes) after the patch.

    A null attribute value removes that key.
    """
    attributes = dict(product.attributes)
    for key, value in patch.attributes.items():
        if value is None:
            attributes.pop(key, None)
        else:
            attributes[key] = value
    schema_id = product.schema_id if patch.schema_id is UNSET else patch.schema_id
    return schema_id, patch.status or product.status, attributes


def check_size(encoded: bytes, current: bytes | None = None) -> None:
    """Raise ValidationError if the encoded attributes exceed MAX_ATTRIBUTES_BYTES.

    A write that makes an oversized product smaller passes, so products
    stored before this limit existed can still be trimmed.
    """
    if len(encoded) <= MAX_ATTRIBUTES_BYTES:
        return
    if current is not None and len(encoded) < len(current):
        return
    raise ValidationError(
        "attributes",
        f"would take {len(encoded)} bytes as JSON, over the limit of"
        f" {MAX_ATTRIBUTES_BYTES} bytes per product; store large content"
        " elsewhere and keep its URL in an attribute",
    )


def is_stale(product: ProductRow, patch: ProductPatch) -> bool:
    """Return whether the product changed after the instant the client last saw."""
    expected = patch.expected_updated_us
    return expected is not None and product.updated_us > expected


def parse_changes_query(query: dict[str, str]) -> ChangesQuery:
    """Check the since, page_size and cursor of GET /api/v1/catalog/changes.

    A cursor continues a listing and takes precedence over since.
    """
    page_size = _page_size(query.get("page_size"))
    cursor = query.get("cursor")
    if cursor:
        return ChangesQuery(decode_cursor(cursor), page_size)
    since = query.get("since")
    since_us = 0 if since is None else _instant("since", since)
    # Every id sorts after "", so the feed includes products written at
    # exactly since_us: a write in the same microsecond as a previous
    # sync_timestamp is listed again rather than missed.
    return ChangesQuery((since_us, ""), page_size)


def encode_cursor(product: ProductRow) -> str:
    raw = f"{product.updated_us}:{product.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    invalid = ValidationError(
        "cursor", "is not a cursor from this API; pass next_cursor from the last page"
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        updated_text, _, product_id = raw.partition(":")
        updated_us = int(updated_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    # SQLite integers are signed 64-bit, and a write time is never negative.
    if not product_id or not 0 <= updated_us < 2**63:
        raise invalid
    return updated_us, product_id


def public(product: ProductRow) -> dict[str, Any]:
    """Render the product object."""
    return {
        "id": product.id,
        "schema_id": product.schema_id,
        "status": product.status,
        "attributes": product.attributes,
        "created_at": iso_us(product.created_us),
        "updated_at": iso_us(product.updated_us),
    }


def _status(body: dict[str, Any]) -> str | None:
    value = body.get("status")
    if value is None:
        return None
    if value not in STATUSES:
        raise ValidationError(
            "status", f"must be one of {', '.join(STATUSES)}, got {value!r}"
        )
    return value


def _attributes(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("attributes")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(
            "attributes", "must be an object of attribute key to value"
        )
    return value


def _instant(field: str, text: str) -> int:
    try:
        return parse_iso(text)
    except ValueError:
        raise ValidationError(
            field,
            f"must be an ISO 8601 time with a zone such as "
            f"2026-01-01T12:00:00.000000Z, got {text!r}",
        ) from None


def _page_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_CHANGES_PAGE_SIZE
    allowed = f"must be an integer from 1 to {MAX_CHANGES_PAGE_SIZE}"
    value = check.parse_digits(text)
    if value is None:
        raise ValidationError("page_size", f"{allowed}, got {text!r}")
    if not 1 <= value <= MAX_CHANGES_PAGE_SIZE:
        raise ValidationError("page_size", f"{allowed}, got {value}")
    return value
