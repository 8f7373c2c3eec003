"""Logging set-up: structlog events, JSON when not on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import orjson
import structlog

logger = structlog.get_logger("lassod")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


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


def _dumps(value: object, **_: object) -> str:
    return orjson.dumps(value, default=str).decode()
