"""Crash recovery: SIGKILL a real lassod process and check no delivery is lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import eventually


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LassodProcess:
    """`python -m lassod` in a subprocess with settings from the environment."""

    def __init__(self, folder: Path, retry_delays: str, timeout_s: float = 5.0) -> None:
        self.folder = folder
        self.port = free_port()
        self.database = folder / "lassod.db"
        self.environment = {
            **os.environ,
            "LASSOD_SERVER_PORT": str(self.port),
            "LASSOD_DATABASE_PATH": str(self.database),
            "LASSOD_DELIVERY_RETRY_DELAYS_S": retry_delays,
            "LASSOD_DELIVERY_TIMEOUT_S": str(timeout_s),
            "LASSOD_SECURITY_ALLOW_PRIVATE_TARGETS": "true",
            "LASSOD_LOG_FORMAT": "json",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{self.port}"

    def create_key(self) -> str:
        output = subprocess.run(
            [sys.executable, "-m", "lassod", "keys", "create", "--company", "acme"],
            env=self.environment,
            cwd=self.folder,
            capture_output=True,
            check=True,
            timeout=30,
        )
        return output.stdout.decode().strip()

    async def start(self) -> None:
        log = open(self.folder / "lassod.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lassod", "serve"],
            env=self.environment,
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        async with aiohttp.ClientSession() as session:

            async def listening() -> bool:
                try:
                    async with session.get(self.base_url + "/api/v1/tables") as response:
                        return response.status == 401
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(listening, timeout_s=20)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)

    def attempts(self) -> list[tuple[int, str | None, str | None]]:
        with sqlite3.connect(self.database) as connection:
            return connection.execute(
                "SELECT number, outcome, error_kind FROM attempts ORDER BY number"
            ).fetchall()


@pytest.fixture
def lassod_process(tmp_path: Path):
    processes: list[LassodProcess] = []

    def make(retry_delays: str, timeout_s: float = 5.0) -> LassodProcess:
        process = LassodProcess(tmp_path, retry_delays, timeout_s)
        processes.append(process)
        return process

    yield make
    for process in processes:
        if process.process is not None and process.process.poll() is None:
            process.kill()


async def complete_table(process: LassodProcess, key: str, url: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    body = {"name": "t", "schema_id": "s", "file_ids": ["f1"], "webhook_url": url}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(process.base_url + "/api/v1/tables", json=body) as response:
            assert response.status == 201
            table = await response.json()
        status_url = f"{process.base_url}/api/v1/tables/{table['id']}/status"
        async with session.post(status_url, json={"status": "completed"}) as response:
            assert response.status == 200


async def test_kill_between_attempts_keeps_retry(lassod_process, make_receiver):
    async def fail_first(request: web.Request, number: int) -> web.Response:
        return web.Response(status=503 if number == 1 else 200)

    receiver = await make_receiver(fail_first)
    process = lassod_process("[1.5, 1.5, 1.5]")
    key = process.create_key()
    await process.start()
    await complete_table(process, key, receiver.url)
    await receiver.wait_for(1)
    await asyncio.sleep(0.3)

    process.kill()
    assert process.attempts() == [(1, "failed", None)]
    await process.start()

    items = await receiver.wait_for(2, timeout_s=15)
    assert items[0].headers["X-Lasso-Event-Id"] == items[1].headers["X-Lasso-Event-Id"]
    assert items[0].headers["X-Lasso-Delivery-Id"] != items[1].headers["X-Lasso-Delivery-Id"]

    def succeeded() -> bool:
        return process.attempts() == [(1, "failed", None), (2, "succeeded", None)]

    async def recorded() -> bool:
        return succeeded()

    await eventually(recorded)
    assert process.terminate() == 0


async def test_kill_during_attempt_counts_it_failed(lassod_process, make_receiver):
    release = asyncio.Event()

    async def hang_first(request: web.Request, number: int) -> web.Response:
        if number == 1:
            await release.wait()
        return web.Response(status=200)

    receiver = await make_receiver(hang_first)
    process = lassod_process("[0.5, 0.5, 0.5]", timeout_s=3.0)
    key = process.create_key()
    await process.start()
    await complete_table(process, key, receiver.url)
    await receiver.wait_for(1)

    process.kill()
    assert process.attempts() == [(1, None, None)]
    release.set()
    await process.start()

    await receiver.wait_for(2, timeout_s=15)

    async def recorded() -> bool:
        return process.attempts() == [
            (1, "interrupted", "interrupted"),
            (2, "succeeded", None),
        ]

    await eventually(recorded)
    async with aiohttp.ClientSession() as session:
        async with session.get(process.base_url + "/metrics") as response:
            assert response.status == 200
            metrics = await response.text()
    interrupted = 'lassod_attempts_total{outcome="interrupted",status_class="none"} 1.0'
    assert interrupted in metrics
    assert process.terminate() == 0


async def test_restart_under_lock_fails_cleanly(lassod_process, make_receiver):
    release = asyncio.Event()

    async def hang(request: web.Request, number: int) -> web.Response:
        await release.wait()
        return web.Response(status=200)

    receiver = await make_receiver(hang)
    process = lassod_process("[0.5, 0.5, 0.5]", timeout_s=30.0)
    key = process.create_key()
    await process.start()
    await complete_table(process, key, receiver.url)
    await receiver.wait_for(1)
    process.kill()
    release.set()

    # Another process holds the write lock while lassod settles the attempt
    # it interrupted, for longer than SQLite's busy timeout of 5 s.
    holder = sqlite3.connect(process.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        log = open(process.folder / "restart.log", "wb")
        restart = subprocess.Popen(
            [sys.executable, "-m", "lassod", "serve"],
            env=process.environment,
            cwd=process.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        returncode = await asyncio.to_thread(restart.wait, 30)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    output = (process.folder / "restart.log").read_text()
    assert returncode == 1
    assert "Traceback" not in output
    failures = [
        json.loads(line)
        for line in output.splitlines()
        if '"lassod_start_failed"' in line
    ]
    assert len(failures) == 1
    assert "database is locked" in failures[0]["error"]
    assert "start lassod again" in failures[0]["error"]
    assert process.attempts() == [(1, None, None)]
