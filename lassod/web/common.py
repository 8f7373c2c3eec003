"""Helpers shared by API handlers: body parsing, auth and pagination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from lassod.ids import hash_api_key
from lassod.store import keys as key_queries
from lassod.validation import ValidationError
from lassod.web.errors import ApiError
from lassod.web.state import DATABASE

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25


@dataclass(frozen=True)
class Page:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def render(self, data: list[Any], total: int) -> dict[str, Any]:
        return {
            "data": data,
            "pagination": {"page": self.page, "limit": self.limit, "total": total},
        }


async def read_json(request: web.Request) -> Any:
    """Return the parsed JSON body; malformed JSON is a 400."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"request body is not valid JSON: {error}") from None


async def company_id(request: web.Request) -> str:
    """Return the company of the request's API key, or raise 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            "missing or malformed Authorization header; send Authorization: Bearer <API key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = await request.app[DATABASE].read(
        key_queries.company_for_key_hash, hash_api_key(key.strip())
    )
    if found is None:
        raise ApiError(
            401, "invalid API key; create one with `lassod keys create`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


def page_of(request: web.Request) -> Page:
    return Page(
        page=_query_int(request, "page", 1, 1, 1_000_000),
        limit=_query_int(request, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
    )


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValidationError(name, f"must be an integer from {low} to {high}, got {text!r}") from None
    if not low <= value <= high:
        raise ValidationError(name, f"must be an integer from {low} to {high}, got {value}")
    return value
