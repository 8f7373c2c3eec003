"""Attributes: request checks, merging of changes and the public object."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lassod import validation as check
from lassod.clock import iso_us
from lassod.validation import ValidationError

TYPES = (
    "text",
    "number",
    "url",
    "email",
    "date",
    "boolean",
    "richtext",
    "enum",
    "tags",
    "image",
    "images",
    "json",
    "file",
    "files",
)
MAX_BULK = 500
MAX_KEY_LENGTH = 128
MAX_VALUES = 1000
# Fields a PUT or an upsert of an existing key may change.
MUTABLE_FIELDS = ("label", "enum_values", "tags_values", "description", "is_reviewed")
UPSERT_FIELDS = {"key", "type", *MUTABLE_FIELDS}
PUT_FIELDS = {"type", *MUTABLE_FIELDS}
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class AttributeRow:
    id: str
    company_id: str
    key: str
    label: str
    type: str
    enum_values: tuple[str, ...] | None
    tags_values: tuple[str, ...] | None
    description: str | None
    is_reviewed: bool
    created_us: int
    updated_us: int


@dataclass(frozen=True)
class AttributeInput:
    """A checked attribute body: the key, the type if given, and the changes.

    changes holds only the mutable fields present in the body, so an update
    leaves absent fields as they are.
    """

    key: str
    type: str | None
    changes: dict[str, Any]


def check_key(field: str, value: Any) -> str:
    """Check an attribute key: a letter, then letters, digits or underscores."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "is required and must be a string")
    if len(value) > MAX_KEY_LENGTH or not _KEY.fullmatch(value):
        raise ValidationError(
            field,
            f"must start with a letter and contain only letters, digits and "
            f"underscores (at most {MAX_KEY_LENGTH} characters), got {value!r}",
        )
    return value


def parse_upsert(body: Any) -> AttributeInput:
    """Check one attribute of a POST /api/v1/attributes body."""
    body = check.ensure_object(body)
    check.reject_unknown(body, UPSERT_FIELDS)
    key = check_key("key", body.get("key"))
    return AttributeInput(key, _type_of(body), _changes(body))


def parse_bulk(body: dict[str, Any]) -> list[AttributeInput]:
    """Check a {"attributes": [...]} body. Error fields name the item index."""
    check.reject_unknown(body, {"attributes"})
    items = body.get("attributes")
    if not isinstance(items, list) or not items:
        raise ValidationError("attributes", "must be a non-empty array of attributes")
    if len(items) > MAX_BULK:
        raise ValidationError(
            "attributes",
            f"must have at most {MAX_BULK} items, got {len(items)}; split the request",
        )
    parsed = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValidationError(f"attributes[{index}]", "must be a JSON object")
        with field_prefix(f"attributes[{index}]"):
            attribute = parse_upsert(item)
            if attribute.key in seen:
                raise ValidationError(
                    "key", f"{attribute.key!r} appears more than once"
                )
        seen.add(attribute.key)
        parsed.append(attribute)
    return parsed


def parse_put(key: str, body: Any) -> AttributeInput:
    """Check a PUT /api/v1/attributes/{key} body."""
    body = check.ensure_object(body)
    if "key" in body:
        raise ValidationError(
            "key", "cannot change with PUT; use POST /api/v1/attributes/{key}/rename"
        )
    check.reject_unknown(body, PUT_FIELDS)
    return AttributeInput(key, _type_of(body), _changes(body))


def parse_rename(body: Any) -> str:
    body = check.ensure_object(body)
    check.reject_unknown(body, {"new_key"})
    return check_key("new_key", body.get("new_key"))


@contextmanager
def field_prefix(prefix: str) -> Iterator[None]:
    """Prefix the field of a ValidationError raised inside the block."""
    try:
        yield
    except ValidationError as error:
        raise ValidationError(f"{prefix}.{error.field}", error.message) from None


def new_state(attribute: AttributeInput) -> dict[str, Any]:
    """Return the fields of a new attribute with defaults filled in."""
    if attribute.type is None:
        raise ValidationError(
            "type", f"is required to create an attribute: one of {', '.join(TYPES)}"
        )
    state = {
        "key": attribute.key,
        "label": attribute.key,
        "type": attribute.type,
        "enum_values": None,
        "tags_values": None,
        "description": None,
        "is_reviewed": False,
    }
    state.update(attribute.changes)
    check_state(state)
    return state


def merged_state(current: AttributeRow, attribute: AttributeInput) -> dict[str, Any]:
    """Apply an update to an existing attribute, whose type cannot change."""
    if attribute.type is not None and attribute.type != current.type:
        raise ValidationError(
            "type",
            f"cannot change from {current.type!r} to {attribute.type!r}; "
            "create an attribute with another key instead",
        )
    state = {name: getattr(current, name) for name in ("key", "type", *MUTABLE_FIELDS)}
    state.update(attribute.changes)
    check_state(state)
    return state


def check_state(state: dict[str, Any]) -> None:
    """Check rules that span fields: enum_values belong to enum attributes only."""
    if state["type"] == "enum" and not state["enum_values"]:
        raise ValidationError("enum_values", "is required for an enum attribute")
    if state["type"] != "enum" and state["enum_values"] is not None:
        raise ValidationError(
            "enum_values", f"is allowed only for type 'enum', not {state['type']!r}"
        )


def differs(current: AttributeRow, state: dict[str, Any]) -> bool:
    return any(getattr(current, name) != value for name, value in state.items())


def with_state(
    current: AttributeRow, state: dict[str, Any], updated_us: int
) -> AttributeRow:
    return dataclasses.replace(current, **state, updated_us=updated_us)


def public(attribute: AttributeRow) -> dict[str, Any]:
    """Render the attribute object."""
    return {
        "id": attribute.id,
        "key": attribute.key,
        "label": attribute.label,
        "type": attribute.type,
        "enum_values": _list_or_none(attribute.enum_values),
        "tags_values": _list_or_none(attribute.tags_values),
        "description": attribute.description,
        "is_reviewed": attribute.is_reviewed,
        "created_at": iso_us(attribute.created_us),
        "updated_at": iso_us(attribute.updated_us),
    }


def _type_of(body: dict[str, Any]) -> str | None:
    if "type" not in body:
        return None
    value = body["type"]
    if not isinstance(value, str) or value not in TYPES:
        raise ValidationError(
            "type", f"must be one of {', '.join(TYPES)}, got {value!r}"
        )
    return value


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "label" in body:
        changes["label"] = check.text(body, "label", required=True, max_length=256)
    if "description" in body:
        # Null clears the description of an existing attribute.
        changes["description"] = check.text(
            body, "description", max_length=10_000, nullable=True
        )
    if "is_reviewed" in body:
        reviewed = check.boolean(body, "is_reviewed")
        if reviewed is None:
            raise ValidationError("is_reviewed", "must be true or false, got null")
        changes["is_reviewed"] = reviewed
    for field in ("enum_values", "tags_values"):
        if field in body:
            changes[field] = _value_list(body, field)
    return changes


def _value_list(body: dict[str, Any], field: str) -> tuple[str, ...] | None:
    """Return a list of distinct strings (possibly empty) as a tuple, or None."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationError(field, "must be an array of strings or null")
    if len(value) > MAX_VALUES:
        raise ValidationError(field, f"must have at most {MAX_VALUES} items")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > 1000 or "\x00" in item:
            raise ValidationError(
                f"{field}[{index}]",
                "must be a non-empty string of at most 1000 characters",
            )
    if len(set(value)) != len(value):
        raise ValidationError(field, "must not contain the same value twice")
    return tuple(value)


def _list_or_none(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)
