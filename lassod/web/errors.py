"""API errors: the JSON error format and the middleware that renders it."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import orjson
import structlog
from aiohttp import web

from lassod.ids import new_id
from lassod.logs import error_text, logger
from lassod.store.database import is_unavailable
from lassod.validation import ValidationError

ERROR_TYPES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "invalid_request",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
# Retry-After, in seconds, of a 503 for a locked or failing database.
DATABASE_RETRY_AFTER_S = 5
REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
_MAX_REQUEST_ID_LENGTH = 128
# Probes and scrapes arrive every few seconds; their access lines are debug.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Called with (route, method, status) after each request, such as to count it.
RESPONSE_OBSERVER = web.AppKey("response_observer", Callable[[str, str, int], None])


class ApiError(Exception):
    """An error returned to the client in the documented JSON format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        close_connection: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}
        # Set when the rest of the request cannot be read, so the connection
        # cannot carry another request.
        self.close_connection = close_connection


def not_found(kind: str, identifier: str) -> ApiError:
    return ApiError(404, f"{kind} {identifier!r} not found")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json"
    )


def error_response(
    request: web.Request, status: int, message: str, extra: dict[str, Any] | None = None
) -> web.Response:
    body = {
        "status_code": status,
        "error_type": ERROR_TYPES.get(status, "invalid_request"),
        "message": message,
        "request_id": request.get(REQUEST_ID),
    }
    body.update(extra or {})
    return json_response(body, status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id, log it once, and render every error as JSON.

    The id is bound to structlog's context for the request's task, so every
    line logged while handling it carries the same request_id as the access
    line and the X-Request-Id header.
    """
    request[REQUEST_ID] = _request_id(request)
    with structlog.contextvars.bound_contextvars(request_id=request[REQUEST_ID]):
        response = await _handle(request, handler)
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    try:
        response = await handler(request)
    except ApiError as error:
        response = error_response(request, error.status, error.message, error.extra)
        response.headers.update(error.headers)
        if error.close_connection:
            response.force_close()
    except ValidationError as error:
        response = error_response(request, 422, f"{error.field}: {error.message}", {"field": error.field})
    except web.HTTPRequestEntityTooLarge:
        response = error_response(
            request,
            413,
            f"request body is too large: the limit is {request.client_max_size} bytes",
        )
    except web.HTTPException as error:
        response = _http_exception_response(request, error)
    except Exception as error:
        if is_unavailable(error):
            response = _unavailable_response(request, error)
        else:
            logger.exception(
                "api_request_failed", method=request.method, path=request.path
            )
            response = error_response(
                request, 500, "internal error; the request id is in the server log"
            )
    response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
    route = _route_name(request)
    log = logger.debug if request.path in _QUIET_PATHS else logger.info
    log(
        "api_request",
        method=request.method,
        route=route,
        status=response.status,
        duration_ms=round((time.monotonic() - started) * 1000, 2),
    )
    on_response = request.app.get(RESPONSE_OBSERVER)
    if on_response is not None:
        on_response(route, request.method, response.status)
    return response


def _unavailable_response(request: web.Request, error: Exception) -> web.Response:
    """Return a 503 for a database that is locked, failing or closed.

    Every handler that writes does so in one transaction, which was rolled
    back, so the same request may be repeated.
    """
    logger.warning(
        "api_database_unavailable",
        method=request.method,
        path=request.path,
        error=error_text(error),
    )
    response = error_response(
        request,
        503,
        "the database is unavailable (locked or failing); nothing was changed,"
        f" retry in {DATABASE_RETRY_AFTER_S} s",
    )
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    return response


def _http_exception_response(request: web.Request, error: web.HTTPException) -> web.Response:
    if error.status == 404:
        message = f"no route for {request.method} {request.path}"
    elif error.status == 405:
        message = f"method {request.method} is not allowed on {request.path}"
    else:
        message = error.reason
    response = error_response(request, error.status, message)
    if "Allow" in error.headers:
        response.headers["Allow"] = error.headers["Allow"]
    return response


def _request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if 0 < len(given) <= _MAX_REQUEST_ID_LENGTH and given.isascii() and given.isprintable():
        return given
    return new_id("req")


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"
