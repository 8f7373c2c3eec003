"""Logging set-up: structlog events, JSON when not on a terminal."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from typing import Any, TextIO

import aiohttp
import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

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
    # A request body cut short, found again by aiohttp when it drains the
    # body after the handler returned 400.
    RequestPayloadError,
)

# aiohttp logs an error line for each malformed request, which any client can
# send without a key. Those lines become warnings, at most one per interval,
# and the next one counts those left out.
MALFORMED_REQUEST_LOG_INTERVAL_S = 10.0

# JSON lines wait in memory until this many bytes, an error line, or the next
# periodic flush, so a busy daemon writes a few large chunks instead of one
# write system call per delivery attempt.
FLUSH_BYTES = 64 * 1024
FLUSH_INTERVAL_S = 0.1


class BufferedLineLogger:
    """A structlog logger that writes rendered JSON lines in batches.

    Lines of level error and above are written at once together with the
    lines before them. NOTE: a process killed with SIGKILL loses at most the
    lines of its last FLUSH_INTERVAL_S. Attempts are still recorded in SQLite
    before and after they run, independent of this log.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        self._size = 0

    def msg(self, message: bytes) -> None:
        self._pending.append(message)
        self._size += len(message) + 1
        if self._size >= FLUSH_BYTES:
            self.flush()

    def urgent(self, message: bytes) -> None:
        self.msg(message)
        self.flush()

    debug = info = warning = warn = log = msg
    error = err = critical = exception = failure = fatal = urgent

    def flush(self) -> None:
        """Write and flush every pending line."""
        if not self._pending:
            return
        pending, self._pending, self._size = self._pending, [], 0
        pending.append(b"")
        chunk = b"\n".join(pending)
        binary = getattr(self._stream, "buffer", None)
        if binary is not None:
            self._stream.flush()
            binary.write(chunk)
            binary.flush()
        else:
            self._stream.write(chunk.decode())
            self._stream.flush()


_buffered: BufferedLineLogger | None = None


def configure(level: str = "info", format: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog: one event per line to `stream` (stdout by default).

    `format` is json, console, or auto (console on a terminal, else JSON).
    JSON lines are buffered and written by `flush`; console lines at once.
    """
    global _buffered
    flush()
    stream = sys.stdout if stream is None else stream
    use_console = format == "console" or (format == "auto" and stream.isatty())
    renderer: structlog.typing.Processor
    factory: Any
    if use_console:
        renderer = structlog.dev.ConsoleRenderer()
        factory = structlog.PrintLoggerFactory(stream)
        _buffered = None
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        _buffered = BufferedLineLogger(stream)
        factory = _return_buffered
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _stamp_utc,
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    _Chain.processors = processors
    _Chain.level = _LEVELS[level]
    _Chain.output = factory()
    _route_standard_logging(_LEVELS[level])


class _StructlogHandler(logging.Handler):
    """Forward standard-library log records (aiohttp, asyncio) to structlog."""

    def __init__(self) -> None:
        super().__init__()
        # time.monotonic() before which malformed-request lines are skipped.
        self._malformed_quiet_until = 0.0
        self._malformed_skipped = 0

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, object] = {"logger": record.name, "message": record.getMessage()}
        level = record.levelno
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            if isinstance(error, HttpProcessingError):
                # Its text quotes the offending request bytes, which may hold
                # an API key from an over-long Authorization header.
                fields["error"] = f"{type(error).__name__} (HTTP {error.code})"
                if record.name == "aiohttp.server":
                    if not self._malformed_request_due(fields):
                        return
                    level = min(level, logging.WARNING)
            elif isinstance(error, EXPECTED_NETWORK_ERRORS):
                fields["error"] = error_text(error)
            else:
                fields["exc_info"] = record.exc_info
        logger.log(level, "library_log", **fields)

    def _malformed_request_due(self, fields: dict[str, object]) -> bool:
        """Return whether to log this malformed request, counting those skipped."""
        now = time.monotonic()
        if now < self._malformed_quiet_until:
            self._malformed_skipped += 1
            return False
        self._malformed_quiet_until = now + MALFORMED_REQUEST_LOG_INTERVAL_S
        if self._malformed_skipped:
            fields["similar_lines_skipped"] = self._malformed_skipped
            self._malformed_skipped = 0
        return True


def _route_standard_logging(level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StructlogHandler):
            root.removeHandler(handler)
    root.addHandler(_StructlogHandler())
    root.setLevel(level)


class _SecondPrefix:
    """The rendering of the current second, made once per second."""

    second = -1
    text = ""


def _stamp_utc(_: object, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Add `timestamp` as YYYY-MM-DDTHH:MM:SS.ffffffZ in UTC.

    Every log line takes a time stamp, and structlog's TimeStamper builds a
    datetime for each one. Here only the microseconds are formatted per line.
    """
    now_us = time.time_ns() // 1_000
    second, micros = divmod(now_us, 1_000_000)
    if second != _SecondPrefix.second:
        _SecondPrefix.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _SecondPrefix.second = second
    event["timestamp"] = f"{_SecondPrefix.text}.{micros:06d}Z"
    return event


class _Chain:
    """The processors, level and output that `configure` last set up."""

    processors: list[Any] | None = None
    level = logging.INFO
    output: Any = None


def log_event(method: str, event: str, fields: dict[str, Any]) -> None:
    """Log one line through the processors that `configure` set up.

    Equivalent to `getattr(logger, method)(event, **fields)`, for the line
    logged per attempt. That call goes through structlog's lazy proxy, which
    binds a new logger for every line, and through the bound logger's method
    chain. Together those cost as much as the processors themselves, so this
    runs the same processors directly. `fields` becomes the line's dict.
    When structlog was configured by other code (as tests do to capture
    lines), it logs through `logger` instead.
    """
    if structlog.get_config()["processors"] is not _Chain.processors:
        getattr(logger, method)(event, **fields)
        return
    if _LEVELS[method] < _Chain.level:
        return
    fields["event"] = event
    line: Any = fields
    try:
        for processor in _Chain.processors:
            line = processor(_Chain.output, method, line)
    except structlog.DropEvent:
        return
    getattr(_Chain.output, method)(line)


def error_text(error: BaseException) -> str:
    """Return an error as `Type: message`, for the error field of a log line."""
    return f"{type(error).__name__}: {error}"


def flush() -> None:
    """Write every buffered log line now."""
    if _buffered is not None:
        _buffered.flush()


async def flush_periodically() -> None:
    """Flush buffered log lines every FLUSH_INTERVAL_S until cancelled."""
    try:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            flush()
    finally:
        flush()


def _return_buffered(*_: object) -> BufferedLineLogger | None:
    return _buffered


def _dumps(value: object, **_: object) -> bytes:
    return orjson.dumps(value, default=str)


atexit.register(flush)
