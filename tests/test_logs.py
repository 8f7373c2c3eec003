"""Log lines: request ids tie a request's lines together; one line per attempt."""

from __future__ import annotations

import io
import json
import socket

import pytest
import structlog
from aiohttp import web

from lassod import logs
from lassod.logs import logger
from lassod.web.errors import error_middleware
from tests.conftest import eventually


@pytest.fixture
def logged():
    """Capture structlog events with their bound context variables."""
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    yield capture.entries
    logs.configure()


@pytest.fixture
async def middleware_server():
    async def noisy(request: web.Request) -> web.Response:
        logger.warning("handler_noticed_something")
        return web.Response(text="ok")

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("handler bug")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/noisy", noisy)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_request_id_ties_log_lines_and_header(lassod, middleware_server, logged):
    headers = {"X-Request-Id": "req-from-client-1"}
    async with lassod.session.get(
        middleware_server + "/noisy", headers=headers
    ) as response:
        assert response.headers["X-Request-Id"] == "req-from-client-1"

    lines = [
        entry for entry in logged if entry.get("request_id") == "req-from-client-1"
    ]
    assert [entry["event"] for entry in lines] == [
        "handler_noticed_something",
        "api_request",
    ]
    assert lines[1]["route"] == "/noisy"
    assert lines[1]["status"] == 200


async def test_error_line_carries_request_id(lassod, middleware_server, logged):
    async with lassod.session.get(middleware_server + "/broken") as response:
        body = await response.json()
        request_id = response.headers["X-Request-Id"]

    assert response.status == 500
    assert body["request_id"] == request_id
    lines = [entry for entry in logged if entry.get("request_id") == request_id]
    assert [entry["event"] for entry in lines] == ["api_request_failed", "api_request"]
    assert lines[1]["status"] == 500


async def test_request_id_not_left_in_context(lassod, middleware_server, logged):
    async with lassod.session.get(middleware_server + "/noisy"):
        pass

    logger.info("after_request")

    assert "request_id" not in logged[-1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_dead_receiver_one_line_per_attempt(lassod, logged):
    key = await lassod.new_key()
    url = f"http://127.0.0.1:{closed_port()}/hook"
    body = {"name": "T", "schema_id": "s", "source_text": "x", "webhook_url": url}
    _, table = await lassod.request("POST", "/api/v1/tables", key, json=body)
    await lassod.request(
        "POST",
        f"/api/v1/tables/{table['id']}/status",
        key,
        json={"status": "completed"},
    )

    async def abandoned() -> bool:
        return any(entry["event"] == "delivery_abandoned" for entry in logged)

    await eventually(abandoned)
    attempt_lines = [entry for entry in logged if "delivery_id" in entry]
    assert [entry["event"] for entry in attempt_lines] == [
        "delivery_attempt_failed",
        "delivery_attempt_failed",
        "delivery_attempt_failed",
        "delivery_abandoned",
    ]
    assert {entry["error_kind"] for entry in attempt_lines} == {"connection_refused"}
    for entry in logged:
        assert "exc_info" not in entry
        assert "exception" not in entry



def test_log_event_writes_what_the_logger_writes():
    stream = io.StringIO()
    fields = {"delivery_id": "dlv_1", "attempt": 2, "status": None, "ratio": 0.5}
    logs.configure("info", "json", stream=stream)
    try:
        logger.warning("delivery_attempt_failed", **fields)
        logs.log_event("warning", "delivery_attempt_failed", dict(fields))
        logs.flush()
    finally:
        logs.configure()

    through_logger, through_event = [
        json.loads(line) for line in stream.getvalue().splitlines()
    ]
    assert through_event.pop("timestamp")
    assert through_logger.pop("timestamp")
    assert through_event == through_logger
    assert through_event["level"] == "warning"


def test_log_event_keeps_the_configured_level():
    stream = io.StringIO()
    logs.configure("warning", "json", stream=stream)
    try:
        logs.log_event("info", "delivery_attempt_succeeded", {"attempt": 1})
        logs.log_event("error", "delivery_abandoned", {"attempt": 4})
        # An error line is written at once, without waiting for a flush.
        written = stream.getvalue()
    finally:
        logs.configure()

    [line] = [json.loads(text) for text in written.splitlines()]
    assert line["event"] == "delivery_abandoned"


def test_log_event_follows_another_configuration(logged):
    logs.log_event("info", "delivery_attempt_succeeded", {"attempt": 1})

    assert [entry["event"] for entry in logged] == ["delivery_attempt_succeeded"]
    assert logged[0]["attempt"] == 1
