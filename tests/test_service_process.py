"""`python -m lassod` as a real process: SIGTERM mid-attempt and SIGHUP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lassod.store import Database
from tests.conftest import eventually
from tests.ops_helpers import notify_socket


class Process:
    """A running `python -m lassod serve` whose JSON log lines are collected."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.port = 0
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        stream = self.process.stdout
        while line := await stream.readline():
            self.lines.append(json.loads(line))
            self._changed.set()

    async def wait_for_event(self, name: str, count: int = 1) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                found = [line for line in self.lines if line["event"] == name]
                if len(found) >= count:
                    return found[count - 1]
                self._changed.clear()
                await self._changed.wait()

    async def exit_code(self) -> int:
        async with asyncio.timeout(15):
            code = await self.process.wait()
            await self._reader
        return code


def environment(tmp_path: Path) -> dict[str, str]:
    variables = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("LASSOD_")
    }
    variables.pop("NOTIFY_SOCKET", None)
    variables.update(
        LASSOD_DATABASE_PATH=str(tmp_path / "lassod.db"),
        LASSOD_SERVER_PORT="0",
        LASSOD_SERVER_SHUTDOWN_GRACE_S="5",
        LASSOD_SECURITY_ALLOW_PRIVATE_TARGETS="true",
        LASSOD_LOG_FORMAT="json",
    )
    return variables


async def run_lassod(
    tmp_path: Path, *args: str, **variables: str
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lassod",
        *args,
        env=environment(tmp_path) | variables,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 20)
    return process.returncode, stdout.decode()


@pytest.fixture
async def start_process(tmp_path):
    started: list[Process] = []

    async def start(config: Path, **variables: str) -> Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lassod",
            "--config",
            str(config),
            "serve",
            env=environment(tmp_path) | variables,
            stdout=asyncio.subprocess.PIPE,
        )
        running = Process(process)
        started.append(running)
        running.port = (await running.wait_for_event("lassod_started"))["port"]
        return running

    yield start
    for running in started:
        if running.process.returncode is None:
            running.process.kill()
            await running.process.wait()


async def request(
    lassod: Process, session, method: str, path: str, key: str, body=None
):
    url = f"http://127.0.0.1:{lassod.port}{path}"
    headers = {"Authorization": f"Bearer {key}"}
    async with session.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


def recorded_attempts(connection) -> list[tuple]:
    rows = connection.execute(
        "SELECT a.outcome, a.status_code, d.status FROM attempts a"
        " JOIN deliveries d ON d.id = a.delivery_id"
    ).fetchall()
    return [tuple(row) for row in rows]


async def test_sigterm_mid_attempt_finishes_and_exits_zero(
    tmp_path, start_process, make_receiver
):
    config = tmp_path / "lassod.toml"
    config.write_text('[log]\nlevel = "info"\n')
    code, output = await run_lassod(
        tmp_path, "--config", str(config), "keys", "create", "--company", "acme"
    )
    assert code == 0
    key = output.strip()
    arrived = asyncio.Event()

    async def slow(request: web.Request, number: int) -> web.Response:
        arrived.set()
        await asyncio.sleep(1.0)
        return web.Response(status=200)

    receiver = await make_receiver(slow)
    lassod = await start_process(config)
    async with aiohttp.ClientSession() as session:
        body = {
            "name": "T",
            "schema_id": "s",
            "source_text": "x",
            "webhook_url": receiver.url,
        }
        status, table = await request(
            lassod, session, "POST", "/api/v1/tables", key, body
        )
        assert status == 201
        path = f"/api/v1/tables/{table['id']}/status"
        status, _ = await request(
            lassod, session, "POST", path, key, {"status": "completed"}
        )
        assert status == 200
        await asyncio.wait_for(arrived.wait(), 10)

    lassod.process.send_signal(signal.SIGTERM)

    assert await lassod.exit_code() == 0
    events = [line["event"] for line in lassod.lines]
    assert events.index("delivery_attempt_succeeded") < events.index("lassod_stopped")
    database = await Database.open(str(tmp_path / "lassod.db"))
    try:
        assert await database.read(recorded_attempts) == [
            ("succeeded", 200, "succeeded")
        ]
    finally:
        await database.close()


async def test_sighup_reloads_and_survives_invalid_file(tmp_path, start_process):
    config = tmp_path / "lassod.toml"
    config.write_text("[delivery]\nmax_concurrency = 10\n")
    lassod = await start_process(config)

    config.write_text(
        '[delivery]\nmax_concurrency = 20\n[log]\nlevel = "debug"\n'
        '[metrics]\ntoken = "s3cret-token"\n'
    )
    lassod.process.send_signal(signal.SIGHUP)
    reloaded = await lassod.wait_for_event("settings_reloaded")
    assert reloaded["log_level"] == "debug"
    # Names only, never values: metrics.token is a secret.
    assert sorted(reloaded["changed"]) == [
        "delivery.max_concurrency",
        "log.level",
        "metrics.token",
    ]
    assert not [line for line in lassod.lines if "s3cret-token" in repr(line)]

    config.write_text("[delivery]\nmax_concurrency = 0\n")
    lassod.process.send_signal(signal.SIGHUP)
    failed = await lassod.wait_for_event("settings_reload_failed")
    assert "delivery.max_concurrency" in failed["error"]

    lassod.process.send_signal(signal.SIGTERM)
    assert await lassod.exit_code() == 0


async def test_process_notifies_systemd(tmp_path, start_process):
    config = tmp_path / "lassod.toml"
    config.write_text("")
    with notify_socket() as (address, notify):
        variables = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
        lassod = await start_process(config, **variables)
        await asyncio.sleep(0.5)

        lassod.process.send_signal(signal.SIGTERM)

        assert await lassod.exit_code() == 0
        lines = notify.first_lines()
    assert lines[0] == "READY=1"
    assert f"MAINPID={lassod.process.pid}" in notify.messages[0]
    assert "WATCHDOG=1" in lines
    assert lines[-1] == "STOPPING=1"


async def test_sighup_with_invalid_utf8_reports_ready(tmp_path, start_process):
    config = tmp_path / "lassod.toml"
    config.write_text("")
    with notify_socket() as (address, notify):
        lassod = await start_process(config, NOTIFY_SOCKET=address)

        config.write_bytes(b"\xff")
        lassod.process.send_signal(signal.SIGHUP)
        failed = await lassod.wait_for_event("settings_reload_failed")

        async def ready_again() -> bool:
            return notify.first_lines()[-2:] == ["RELOADING=1", "READY=1"]

        await eventually(ready_again, timeout_s=5)
        lassod.process.send_signal(signal.SIGTERM)
        assert await lassod.exit_code() == 0
    assert "UTF-8" in failed["error"]
    assert not [line for line in lassod.lines if "exc_info" in line]


async def test_start_failure_logged_before_stopping(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])

        code, output = await run_lassod(tmp_path, "serve", LASSOD_SERVER_PORT=port)

    assert code == 1
    events = [json.loads(line)["event"] for line in output.splitlines()]
    assert events == ["lassod_start_failed", "lassod_stopping", "lassod_stopped"]


async def test_read_only_database_fails_start(tmp_path):
    created, _ = await run_lassod(tmp_path, "keys", "create", "--company", "acme")
    assert created == 0
    read_only = f"file:{tmp_path / 'lassod.db'}?mode=ro"

    code, output = await run_lassod(tmp_path, "serve", LASSOD_DATABASE_PATH=read_only)

    assert code == 1
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["event"] for line in lines] == [
        "lassod_start_failed",
        "lassod_stopping",
        "lassod_stopped",
    ]
    assert "read-only for this process" in lines[0]["error"]
