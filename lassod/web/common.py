"""Helpers shared by API handlers: body parsing, auth and pagination."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from lassod.ids import hash_api_key
from lassod.store import keys as key_queries
from lassod.validation import ValidationError, parse_digits
from lassod.web.errors import ApiError
from lassod.web.ratelimit import client_key, retry_after_s
from lassod.web.state import DATABASE, KEY_CACHE, RATE_LIMITS

MAX_JSON_DEPTH = 32
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25
# The query parameters of a list that takes nothing but pagination.
PAGE_PARAMETERS = ("page", "limit")
_PER_KEY_MESSAGE = "too many requests for this API key"
_FAILED_AUTH_MESSAGE = "too many failed authentications from this client"
# orjson (3.13 tested) parses a whole number outside this range as a float,
# which would store and send another value than the client sent.
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**64 - 1
# A whole number of 19 or more digits, the only kind that can fall outside
# that range. A match inside a string only costs a second parse.
_LONG_INTEGER = re.compile(rb"(?<![0-9.eE+-])-?[0-9]{19,}(?![0-9.eE])")


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
    """Return the parsed JSON body; malformed or too deeply nested JSON is a 400.

    A gzip or deflate body is decoded here (the server runs with aiohttp's
    auto_decompress off) and, like any body, may be at most client_max_size
    bytes once decoded.
    """
    try:
        raw = await request.read()
    except RequestPayloadError:
        raise ApiError(
            400,
            "request body could not be read to its end; send the whole body",
            close_connection=True,
        ) from None
    raw = _decoded(request, raw)
    if not raw.strip():
        raise ApiError(400, "request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if str(error).startswith("depth limit exceeded"):
            raise _too_deep() from None
        raise ApiError(400, f"request body is not valid JSON: {error}") from None
    if nesting_depth(body) > MAX_JSON_DEPTH:
        raise _too_deep()
    if _LONG_INTEGER.search(raw):
        _reject_inexact_integers(raw)
    return body


def _reject_inexact_integers(raw: bytes) -> None:
    """Raise ValidationError naming the first whole number orjson cannot keep.

    The standard library's parser keeps every whole number exact. orjson has
    already rejected numbers past a float's range, which is far below
    Python's limit of 4,300 digits, but that limit is reported all the same.
    """
    fix = (
        f"lassod keeps whole numbers from {MIN_INTEGER} to {MAX_INTEGER} exactly;"
        " send larger ones as strings"
    )
    try:
        body = json.loads(raw)
    except ValueError:
        raise ValidationError(
            "body", f"contains a whole number with too many digits; {fix}"
        ) from None
    # Each entry is (value, its parent's entry, its key or index). Paths are
    # spelled out only for the number reported, because building one per
    # value costs memory in proportion to the key lengths times the values.
    stack: list[tuple[Any, Any, str | int | None]] = [(body, None, None)]
    while stack:
        entry = stack.pop()
        item = entry[0]
        if isinstance(item, dict):
            for name, child in reversed(item.items()):
                stack.append((child, entry, name))
        elif isinstance(item, list):
            for index in reversed(range(len(item))):
                stack.append((item[index], entry, index))
        elif isinstance(item, int) and not MIN_INTEGER <= item <= MAX_INTEGER:
            text = str(item)
            if len(text) > 40:
                text = f"{text[:20]}... ({len(text)} characters)"
            raise ValidationError(_path_of(entry), f"is {text}, out of range; {fix}")


def _path_of(entry: tuple[Any, Any, str | int | None]) -> str:
    """Return a field path such as attributes.sizes[2] for a walked value."""
    parts: list[str] = []
    while entry[1] is not None:
        key = entry[2]
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        entry = entry[1]
    return "".join(reversed(parts)).lstrip(".") or "body"


def _decoded(request: web.Request, raw: bytes) -> bytes:
    """Return the body decoded per its Content-Encoding header, or raise ApiError."""
    transfer = _codings(request, "Transfer-Encoding", "chunked")
    if transfer:
        # aiohttp undoes chunked only, and would pass gzip through as is.
        raise ApiError(
            415,
            f"Transfer-Encoding {', '.join(transfer)} is not supported; use"
            " Content-Encoding to compress the body",
        )
    codings = _codings(request, "Content-Encoding", "identity")
    if not codings:
        return raw
    encoding = codings[0]
    if len(codings) > 1 or encoding not in ("gzip", "x-gzip", "deflate"):
        raise ApiError(
            415,
            f"Content-Encoding {', '.join(codings)} is not supported; send the"
            " body uncompressed, or compressed once with gzip or deflate",
        )
    if encoding == "deflate":
        # Per RFC 9110 deflate is zlib-wrapped, but some clients send raw
        # deflate data, which aiohttp 3.14 accepts too.
        decoded = _inflate(raw, [zlib.MAX_WBITS, -zlib.MAX_WBITS], request)
    else:
        decoded = _gunzip(raw, request)
    if decoded is None:
        raise ApiError(
            400,
            f"request body is not valid {encoding} data, as its Content-Encoding"
            " says; compress it correctly, or send it uncompressed without that"
            " header",
        )
    return decoded


def _codings(request: web.Request, header: str, ignored: str) -> list[str]:
    """Return the codings that all of a request's header lines list, in order."""
    codings = []
    for line in request.headers.getall(header, []):
        for coding in line.split(","):
            coding = coding.strip().lower()
            if coding and coding != ignored:
                codings.append(coding)
    return codings


def _inflate(raw: bytes, formats: list[int], request: web.Request) -> bytes | None:
    """Return one zlib or raw deflate stream decoded, or None if it is invalid."""
    limit = request.client_max_size
    for window_bits in formats:
        decompressor = zlib.decompressobj(window_bits)
        try:
            decoded = decompressor.decompress(raw, limit + 1)
        except zlib.error:
            continue
        _check_decoded_size(len(decoded), limit)
        if decompressor.eof and not decompressor.unused_data:
            return decoded
        # Cut short, or followed by other data.
        return None
    return None


def _gunzip(raw: bytes, request: web.Request) -> bytes | None:
    """Return gzip data decoded, member after member, or None if it is invalid."""
    limit = request.client_max_size
    parts: list[bytes] = []
    size = 0
    rest = raw
    while True:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = decompressor.decompress(rest, limit - size + 1)
        except zlib.error:
            return None
        size += len(part)
        _check_decoded_size(size, limit)
        parts.append(part)
        if not decompressor.eof:
            return None
        rest = decompressor.unused_data
        if not rest:
            return b"".join(parts)


def _check_decoded_size(size: int, limit: int) -> None:
    if size > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)


def nesting_depth(value: Any) -> int:
    """Return how deeply arrays and objects nest in a parsed JSON value."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest


def _too_deep() -> ApiError:
    return ApiError(
        400,
        f"request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep;"
        " flatten it",
    )


async def company_id(request: web.Request) -> str:
    """Return the company of the request's API key, or raise 401 or 429.

    A client that used up its budget of failed authentications gets 429
    before its key is looked up, so keys cannot be tried faster than
    server.failed_auth_per_s. A wrong and a revoked key get the same 401.
    """
    limits = request.app[RATE_LIMITS]
    client = client_key(request.remote)
    _enforce(limits.failed_auth.wait_s(client), _FAILED_AUTH_MESSAGE)
    key = _bearer_key(request)
    if key is None:
        limits.failed_auth.take(client)
        raise _unauthenticated(missing=True)
    key_hash = hash_api_key(key)
    cache = request.app[KEY_CACHE]
    found = cache.get(key_hash)
    if found is None:
        # From the read-only connection, so that a request does not wait a
        # busy timeout for its key and then another for its write while
        # another process holds the write lock.
        found = await request.app[DATABASE].snapshot(
            key_queries.company_for_key_hash, key_hash
        )
        if found is None:
            limits.failed_auth.take(client)
            raise _unauthenticated(missing=False)
        cache.put(key_hash, found)
    _enforce(limits.per_key.take(key_hash), _PER_KEY_MESSAGE)
    return found


def _bearer_key(request: web.Request) -> str | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    # Keys are ASCII; other bytes arrive as surrogates that cannot be hashed.
    if scheme.lower() != "bearer" or not key or not key.isascii():
        return None
    return key


def _unauthenticated(missing: bool) -> ApiError:
    if missing:
        message = (
            "missing or malformed Authorization header;"
            " send Authorization: Bearer <API key>"
        )
    else:
        message = "invalid API key; create one with `lassod keys create`"
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def _enforce(wait_s: float, message: str) -> None:
    if wait_s <= 0:
        return
    retry_after = retry_after_s(wait_s)
    raise ApiError(
        429,
        f"{message}; retry after {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


def query_of(request: web.Request) -> dict[str, str]:
    """Return the request's query parameters, rejecting a repeated one.

    Every query parameter of the API takes one value. Reading only the first
    of several would hide a client's mistake, such as ?status=a&status=b.
    Handlers call this after authentication, so a request without a valid
    key gets 401 whatever its query.
    """
    query = request.query
    if len(query) != len(set(query)):
        for name in query:
            count = len(query.getall(name))
            if count > 1:
                raise ValidationError(
                    name, f"is given {count} times; give it at most once"
                )
    return dict(query)


def reject_unknown_query(request: web.Request, allowed: Sequence[str]) -> None:
    """Raise ValidationError naming the first query parameter not in allowed.

    A list that ignored such a parameter would hide a client's mistake, such
    as ?limit=5 on the changes feed, which reads page_size. A GET of a single
    object reads no query parameters and ignores them all.
    """
    for name in request.query:
        if name not in allowed:
            raise ValidationError(
                name, f"unknown query parameter; allowed are {', '.join(allowed)}"
            )


def page_of(request: web.Request) -> Page:
    query = query_of(request)
    return Page(
        page=_query_int(query, "page", 1, 1, 1_000_000),
        limit=_query_int(query, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
    )


def _query_int(
    query: dict[str, str], name: str, default: int, low: int, high: int
) -> int:
    text = query.get(name)
    if text is None:
        return default
    value = parse_digits(text)
    if value is None:
        raise ValidationError(name, f"must be an integer from {low} to {high}, got {text!r}")
    if not low <= value <= high:
        raise ValidationError(name, f"must be an integer from {low} to {high}, got {value}")
    return value
