"""Catalog webhook subscriptions: request checks, secrets and the public object."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from lassod import validation as check
from lassod.catalog.events import EVENT_NAMES
from lassod.clock import iso_us
from lassod.config import SecuritySettings
from lassod.signing import STANDARD_SECRET_PREFIX
from lassod.validation import ValidationError

FIELDS = {
    "url",
    "events",
    "description",
    "active",
    "secret",
    "auth_header_name",
    "auth_header_value",
}
MAX_SECRET_LENGTH = 1024
SECRET_BYTES = 32


@dataclass(frozen=True)
class SubscriptionRow:
    id: str
    company_id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    active: bool
    auth_header_name: str | None
    has_secret: bool
    created_us: int
    updated_us: int
    disabled_reason: str | None = None


@dataclass(frozen=True)
class NewSubscription:
    url: str
    events: tuple[str, ...]
    description: str | None
    active: bool
    secret: str
    auth_header_name: str | None
    auth_header_value: str | None


def generate_secret() -> str:
    """Return `whsec_` and the base64 of 32 random bytes, the Standard Webhooks form."""
    return (
        STANDARD_SECRET_PREFIX
        + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
    )


def parse_new(body: Any, security: SecuritySettings) -> NewSubscription:
    """Check a POST /api/v1/catalog/webhooks body and generate a missing secret."""
    body = check.ensure_object(body)
    check.reject_unknown(body, FIELDS)
    url = check.text(body, "url", required=True, max_length=check.MAX_URL_LENGTH) or ""
    check.target_url("url", url, security)
    if body.get("events") is None:
        raise ValidationError(
            "events", f"is required: a non-empty subset of {', '.join(EVENT_NAMES)}"
        )
    active = check.boolean(body, "active")
    header_name, header_value = check.header_pair(
        body, "auth_header_name", "auth_header_value"
    )
    return NewSubscription(
        url=url,
        events=_events(body),
        description=check.text(
            body, "description", max_length=10_000, nullable=True
        ),
        active=True if active is None else active,
        secret=check.text(body, "secret", max_length=MAX_SECRET_LENGTH)
        or generate_secret(),
        auth_header_name=header_name,
        auth_header_value=header_value,
    )


def parse_patch(body: Any, security: SecuritySettings) -> dict[str, Any]:
    """Check a PATCH body and return the endpoint and subscription columns to set.

    A null description, secret or auth header pair clears it. The auth header
    name and value change together.
    """
    body = check.ensure_object(body)
    check.reject_unknown(body, FIELDS)
    changes: dict[str, Any] = {}
    if "url" in body:
        url = (
            check.text(body, "url", required=True, max_length=check.MAX_URL_LENGTH)
            or ""
        )
        changes["url"] = check.target_url("url", url, security)
    if "events" in body:
        changes["events"] = _events(body)
    if "description" in body:
        changes["description"] = check.text(
            body, "description", max_length=10_000, nullable=True
        )
    if "active" in body:
        active = check.boolean(body, "active")
        if active is None:
            raise ValidationError("active", "must be true or false, got null")
        changes["active"] = active
    if "secret" in body:
        changes["secret"] = check.text(
            body, "secret", max_length=MAX_SECRET_LENGTH, nullable=True
        )
    if "auth_header_name" in body or "auth_header_value" in body:
        name, value = check.header_pair(
            body, "auth_header_name", "auth_header_value", nullable=True
        )
        changes["auth_header_name"] = name
        changes["auth_header_value"] = value
    if not changes:
        raise ValidationError(
            "body", f"must set at least one of {', '.join(sorted(FIELDS))}"
        )
    return changes


def public(subscription: SubscriptionRow, secret: str | None = None) -> dict[str, Any]:
    """Render the subscription, with the secret only when it was just created."""
    rendered: dict[str, Any] = {
        "id": subscription.id,
        "url": subscription.url,
        "events": list(subscription.events),
        "description": subscription.description,
        "active": subscription.active,
        "auth_header_name": subscription.auth_header_name,
        "has_secret": subscription.has_secret,
        "disabled_reason": subscription.disabled_reason,
        "created_at": iso_us(subscription.created_us),
        "updated_at": iso_us(subscription.updated_us),
    }
    if secret is not None:
        rendered["secret"] = secret
    return rendered


def _events(body: dict[str, Any]) -> tuple[str, ...]:
    names = check.string_list(
        body, "events", max_items=len(EVENT_NAMES) * 2, max_length=64
    )
    if not names:
        raise ValidationError(
            "events", f"must be a non-empty subset of {', '.join(EVENT_NAMES)}"
        )
    for index, name in enumerate(names):
        if name not in EVENT_NAMES:
            raise ValidationError(
                f"events[{index}]",
                f"must be one of {', '.join(EVENT_NAMES)}, got {name!r}",
            )
    return tuple(name for name in EVENT_NAMES if name in names)
