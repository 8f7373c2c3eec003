"""Checks for request bodies; each failure names the field and what is allowed."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from yarl import URL

from lassod.config import SecuritySettings
from lassod.netguard import AddressPolicy, parse_literal_host

MAX_URL_LENGTH = 2048
MAX_HEADER_VALUE_LENGTH = 4096
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# One label of a host name after IDNA encoding; underscores occur in real
# names (such as service records), so they are let through.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
MAX_HOST_LENGTH = 253
_FORBIDDEN_HEADER_NAMES = {
    "content-type",
    "content-length",
    "content-encoding",
    "host",
    "user-agent",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
}
_FORBIDDEN_HEADER_PREFIXES = ("x-lasso-", "webhook-", "proxy-")


class ValidationError(Exception):
    """A well-formed request body that breaks a rule; the API returns 422."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def ensure_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    return body


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    for name in body:
        if name not in allowed:
            raise ValidationError(
                name, f"unknown field; allowed fields are {', '.join(sorted(allowed))}"
            )


def text(
    body: dict[str, Any],
    field: str,
    *,
    required: bool = False,
    max_length: int = 1000,
    allow_empty: bool = False,
    nullable: bool = False,
) -> str | None:
    """Return a string field, or None when it is absent and optional.

    With nullable, an explicit null is accepted and returned as None too.
    """
    if field not in body:
        if required:
            raise ValidationError(field, "is required and must be a string")
        return None
    value = body[field]
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {_json_type(value)}")
    if not value and not allow_empty:
        raise ValidationError(field, "must not be empty")
    if len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters")
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters")
    return value


def integer(
    body: dict[str, Any], field: str, *, minimum: int, maximum: int
) -> int | None:
    if field not in body:
        return None
    value = body[field]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, got {_json_type(value)}")
    if not minimum <= value <= maximum:
        raise ValidationError(field, f"must be between {minimum} and {maximum}")
    return value


def number(
    body: dict[str, Any], field: str, *, minimum: float, maximum: float
) -> float | None:
    if field not in body:
        return None
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, f"must be a number, got {_json_type(value)}")
    if math.isnan(value) or not minimum <= value <= maximum:
        raise ValidationError(field, f"must be between {minimum:g} and {maximum:g}")
    # Adding 0.0 turns -0.0 into 0.0, as SQLite stores it.
    return float(value) + 0.0


def boolean(body: dict[str, Any], field: str) -> bool | None:
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, bool):
        raise ValidationError(field, f"must be true or false, got {_json_type(value)}")
    return value


def string_list(
    body: dict[str, Any], field: str, *, max_items: int, max_length: int = 2048
) -> list[str] | None:
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, list) or not value:
        raise ValidationError(field, "must be a non-empty list of strings")
    if len(value) > max_items:
        raise ValidationError(field, f"must have at most {max_items} items")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > max_length:
            raise ValidationError(
                f"{field}[{index}]", f"must be a non-empty string of at most {max_length} characters"
            )
        if "\x00" in item:
            raise ValidationError(f"{field}[{index}]", "must not contain NUL characters")
    return value


def parse_digits(text: str) -> int | None:
    """Parse a query parameter of ASCII digits only; None for anything else.

    int() would also take signs, spaces, underscores and non-ASCII digits.
    """
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def webhook_url(field: str, value: str) -> str:
    """Check that value is an absolute http or https URL without user info."""
    allowed = "must be an absolute http or https URL such as https://example.com/hook"
    if len(value) > MAX_URL_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_URL_LENGTH} characters")
    if any(_is_space_or_control(character) for character in value):
        raise ValidationError(field, "must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError(field, f"{allowed}, got {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(field, f"{allowed}, got {value!r}")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(field, "must not contain user info (user:password@); use a custom auth header")
    if port == 0:
        raise ValidationError(field, "must not use port 0")
    host = _encoded_host(field, value)
    if parse_literal_host(host) is None and not _is_host_name(host):
        raise ValidationError(
            field,
            f"has {host!r} as its host, which is neither an IP address nor a"
            " valid host name (labels of letters, digits and hyphens)",
        )
    return value


def _encoded_host(field: str, value: str) -> str:
    """Return the host as the HTTP client will send it: IDNA-encoded, lowercase."""
    try:
        host = URL(value).raw_host
    except (ValueError, UnicodeError):
        host = None
    if not host:
        raise ValidationError(
            field, f"has a host that cannot be encoded as a domain name, got {value!r}"
        )
    return host


def _is_host_name(host: str) -> bool:
    name = host.removesuffix(".")
    if not name or len(name) > MAX_HOST_LENGTH:
        return False
    return all(_LABEL.fullmatch(label) for label in name.split("."))


def target_url(field: str, value: str, security: SecuritySettings) -> str:
    """Check a URL that lassod will deliver to, such as webhook_url.

    Adds to webhook_url's checks: https when require_https is set, and no IP
    literal that the address policy blocks. Host names are checked again at
    delivery time against the addresses they resolve to.
    """
    webhook_url(field, value)
    parts = urlsplit(value)
    if security.require_https and parts.scheme != "https":
        raise ValidationError(
            field,
            f"must be an https URL because this server requires https, got {value!r}",
        )
    # The client connects to the encoded host, which folds forms such as
    # full-width digits into ASCII ones; check both spellings.
    address = parse_literal_host(_encoded_host(field, value)) or parse_literal_host(
        parts.hostname or ""
    )
    if address is None:
        return value
    reason = AddressPolicy.from_settings(security).blocked_reason(address)
    if reason is not None:
        raise ValidationError(
            field,
            f"points at {address}, which lassod does not deliver to"
            f" (blocked as {reason.replace('_', ' ')}); use a public host, or"
            " have the operator add its range to [security] allowed_cidrs",
        )
    return value


def header_pair(
    body: dict[str, Any], name_field: str, value_field: str, *, nullable: bool = False
) -> tuple[str | None, str | None]:
    """Return a custom auth header (name, value); both or neither must be given.

    With nullable, as in a PATCH, a body that has one field must have the
    other as well, so that null in one of them cannot remove the header.
    """
    if nullable and (name_field in body) != (value_field in body):
        missing = value_field if name_field in body else name_field
        raise ValidationError(
            missing,
            f"{name_field} and {value_field} must be given together"
            " (both null removes the header)",
        )
    name = text(body, name_field, max_length=256, nullable=nullable)
    value = text(body, value_field, max_length=MAX_HEADER_VALUE_LENGTH, nullable=nullable)
    if (name is None) != (value is None):
        raise ValidationError(
            name_field if name is None else value_field,
            f"{name_field} and {value_field} must be given together",
        )
    if name is None or value is None:
        return None, None
    check_header_name(name_field, name)
    check_header_value(value_field, value)
    return name, value


def check_header_name(field: str, name: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise ValidationError(
            field, "must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
        )
    lowered = name.lower()
    if lowered in _FORBIDDEN_HEADER_NAMES or lowered.startswith(_FORBIDDEN_HEADER_PREFIXES):
        raise ValidationError(
            field,
            f"{name!r} is set by lassod itself; choose another name such as Authorization",
        )


def check_header_value(field: str, value: str) -> None:
    if any(character in value for character in "\r\n\x00"):
        raise ValidationError(field, "must not contain CR, LF or NUL characters")
    if any(not (" " <= character <= "~" or character == "\t") for character in value):
        raise ValidationError(
            field, "must contain only printable ASCII characters and tabs"
        )


def _is_space_or_control(character: str) -> bool:
    return (
        ord(character) <= 0x20
        or ord(character) == 0x7F
        or character.isspace()
        # Other controls, and format characters such as a zero-width space.
        or unicodedata.category(character) in ("Cc", "Cf")
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
