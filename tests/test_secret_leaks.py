"""Secrets never leak: a full flow with every response and log line captured."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets

import structlog
from aiohttp import web

from lassod import logs

from tests.conftest import eventually
from tests.security_helpers import webhook_status


class Transcript:
    """Every response of a flow, as raw text with its headers."""

    def __init__(self, lassod) -> None:
        self._lassod = lassod
        self.texts: list[str] = []

    async def call(self, method, path, key=None, **options):
        """Send a request; return (status, parsed JSON body or None)."""
        headers = dict(options.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        url = self._lassod.base_url + path
        async with self._lassod.session.request(
            method, url, headers=headers, **options
        ) as response:
            text = await response.text()
            self.texts.append(f"{response.status} {dict(response.headers)!r} {text}")
            parsed = (
                json.loads(text)
                if response.content_type == "application/json"
                else None
            )
            return response.status, parsed


async def test_secrets_never_in_responses_or_logs(
    lassod, make_receiver, captured_logs, caplog
):
    caplog.set_level(logging.DEBUG)
    secret = "whsk-" + secrets.token_hex(16)
    token = "tok-" + secrets.token_hex(16)

    async def fail_twice(request: web.Request, number: int) -> web.Response:
        return web.Response(status=500 if number <= 2 else 200, text="receiver says no")

    receiver = await make_receiver(fail_twice, secret=secret)
    key = await lassod.new_key()
    transcript = Transcript(lassod)
    table = {
        "name": "Invoices",
        "schema_id": "sch_1",
        "source_text": "text",
        "webhook_url": receiver.url,
        "webhook_secret": secret,
        "webhook_auth_header_name": "Authorization",
        "webhook_auth_header_value": f"Bearer {token}",
    }

    status, created = await transcript.call("POST", "/api/v1/tables", key, json=table)
    assert status == 201
    table_id = created["id"]
    broken_json = f'{{"webhook_secret": "{secret}" oops'
    bad_requests = [
        (key, {"json": {**table, "webhook_auth_header_value": f"{token}\r\n"}}),
        (key, {"json": {**table, "webhook_secret": secret * 100}}),
        (key, {"json": {**table, "webhook_auth_header_name": token + " x"}}),
        (key, {"json": {**table, "webhook_secret": [secret]}}),
        (key, {"data": broken_json, "headers": {"Content-Type": "application/json"}}),
        (key + "x", {"json": table}),
        (key[:-1], {"json": table}),
        (secret, {"json": table}),
    ]
    for used_key, options in bad_requests:
        status, _ = await transcript.call("POST", "/api/v1/tables", used_key, **options)
        assert status >= 400
    await transcript.call(
        "POST", f"/api/v1/tables/{table_id}/status", key, json={"status": "completed"}
    )

    received = await receiver.wait_for(3)

    async def succeeded() -> bool:
        return await webhook_status(lassod, key, table_id) == "succeeded"

    await eventually(succeeded)
    await transcript.call("GET", f"/api/v1/tables/{table_id}", key)
    await transcript.call("GET", "/api/v1/tables", key)
    await lassod.daemon.stop()

    signatures = set()
    for item in received:
        signatures.add(item.headers["X-Lasso-Signature"].removeprefix("sha256="))
        for signature in item.headers["webhook-signature"].split():
            signatures.add(signature.removeprefix("v1,"))
    assert len(signatures) >= 2
    forbidden = {"API key": key, "webhook secret": secret, "auth header value": token}
    forbidden.update(
        {f"signature {index}": value for index, value in enumerate(signatures)}
    )
    logs = repr(captured_logs) + caplog.text
    assert any(entry["event"] == "delivery_attempt_failed" for entry in captured_logs)
    for name, value in forbidden.items():
        for text in transcript.texts:
            assert value not in text, f"{name} appears in a response: {text[:200]}"
        assert value not in logs, f"{name} appears in the logs"


async def test_long_auth_header_not_logged(
    lassod, captured_logs
):
    logs.configure()  # the handler that forwards aiohttp's own records
    structlog.configure(processors=[_capture_into(captured_logs)])
    key = await lassod.new_key()
    header = f"Bearer {key}{'x' * 9000}"

    async with lassod.session.get(
        lassod.base_url + "/api/v1/tables", headers={"Authorization": header}
    ) as response:
        assert response.status == 400

    logged = json.dumps(captured_logs, default=str)
    assert "LineTooLong" in logged
    assert key not in logged


async def test_non_ascii_bearer_key_gets_401(lassod):
    reader, writer = await asyncio.open_connection("127.0.0.1", lassod.daemon.port)
    try:
        writer.write(
            b"GET /api/v1/tables HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        rest = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()

    assert status_line.split()[1] == b"401"
    assert b"unauthenticated" in rest


def _capture_into(entries):
    def capture(_, method_name, event_dict):
        entries.append({**event_dict, "log_level": method_name})
        raise structlog.DropEvent

    return capture
