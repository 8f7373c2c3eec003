"""Logging set-up: structlog events, JSON when not on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import aiohttp
import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError

logger = structlog.get_logger("lassod")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Errors a peer causes: closed connections, timeouts, malformed HTTP. Library
# log lines about them get the error's text but no traceback.
EXPECTED_NETWORK_ERRORS = (
    ConnectionError,
    TimeoutError,
    aiohttp.ClientError,
    HttpProcessingError,
)


def configure(level: str = "info", format: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog: one event per line to `stream` (stdout by default).

    `format` is json, console, or auto (console on a terminal, else JSON).
    """
    stream = sys.stdout if stream is None else stream
    use_console = format == "console" or (format == "auto" and stream.isatty())
    renderer: structlog.typing.Processor
    if use_console:
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(_LEVELS[level])


class _StructlogHandler(logging.Handler):
    """Forward standard-library log records (aiohttp, asyncio) to structlog."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, object] = {"logger": record.name, "message": record.getMessage()}
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            if isinstance(error, EXPECTED_NETWORK_ERRORS):
                fields["error"] = f"{type(error).__name__}: {error}"
            else:
                fields["exc_info"] = record.exc_info
        logger.log(record.levelno, "library_log", **fields)


def _route_standard_logging(level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StructlogHandler):
            root.removeHandler(handler)
    root.addHandler(_StructlogHandler())
    root.setLevel(level)


def _dumps(value: object, **_: object) -> str:
    return orjson.dumps(value, default=str).decode()
