"""Standard-library log records become structlog lines, tracebacks only for bugs."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from datetime import datetime

from lassod import logs


def logged_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_network_error_logged_without_traceback():
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    try:
        try:
            raise ConnectionResetError("peer closed the connection")
        except ConnectionResetError:
            logging.getLogger("aiohttp.server").exception("Error handling request")
    finally:
        logs.configure()

    [line] = logged_lines(stream)
    assert line["event"] == "library_log"
    assert line["logger"] == "aiohttp.server"
    assert line["level"] == "error"
    assert line["error"] == "ConnectionResetError: peer closed the connection"
    assert "exception" not in line


def test_unexpected_error_keeps_traceback():
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    try:
        try:
            raise ValueError("a bug")
        except ValueError:
            logging.getLogger("asyncio").exception("Task exception was never retrieved")
    finally:
        logs.configure()

    [line] = logged_lines(stream)
    assert line["message"] == "Task exception was never retrieved"
    assert "Traceback" in line["exception"]
    assert "ValueError: a bug" in line["exception"]


def test_library_log_respects_level():
    stream = io.StringIO()
    logs.configure("warning", "json", stream=stream)
    try:
        logging.getLogger("aiohttp.access").info("GET / 200")
    finally:
        logs.configure()

    assert logged_lines(stream) == []


def test_json_lines_carry_utc_time_to_the_microsecond():
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    try:
        before = time.time()
        logs.logger.info("first_line")
        time.sleep(1.1)
        logs.logger.info("second_line")
        after = time.time()
        logs.flush()
    finally:
        logs.configure()

    stamps = [line["timestamp"] for line in logged_lines(stream)]
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    moments = [datetime.fromisoformat(stamp).timestamp() for stamp in stamps]
    # The second line falls in a later second, so its rendering is new.
    assert before - 0.001 <= moments[0] < moments[0] + 1.0 <= moments[1] <= after + 0.001
