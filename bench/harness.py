"""The shared set-up of every scenario: receiver, temporary lassod, polling."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import processes

SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC0wMTIzNDU2Nzg5"
# Ports the receiver opens: each is a separate host to lassod's per-host limit.
RECEIVER_LISTENERS = 5


class Harness:
    """One receiver process for the run and one lassod per scenario."""

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.folder = Path(tempfile.mkdtemp(prefix="lassod-bench-"))
        self.receiver, self.receiver_ports = processes.start_receiver(
            RECEIVER_LISTENERS, SECRET
        )
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        self._count = 0

    @property
    def receiver_url(self) -> str:
        return self.receiver_urls[0]

    @property
    def receiver_urls(self) -> list[str]:
        """One base URL per receiver port, all counted together."""
        return [f"http://127.0.0.1:{port}" for port in self.receiver_ports]

    async def close(self) -> None:
        await self.session.close()
        processes.stop(self.receiver)
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    def new_folder(self, name: str) -> Path:
        self._count += 1
        folder = self.folder / f"{self._count:02d}-{name}"
        folder.mkdir()
        return folder

    async def receiver_stats(self, receipts: bool = False) -> dict[str, Any]:
        path = "/_stats?receipts" if receipts else "/_stats"
        async with self.session.get(self.receiver_url + path) as response:
            return orjson.loads(await response.read())

    async def receiver_command(self, command: str) -> None:
        async with self.session.post(self.receiver_url + command) as response:
            await response.read()

    async def wait_for_receipts(
        self, unique: int, timeout_s: float, poll_s: float = 0.05
    ) -> dict[str, Any]:
        """Poll the receiver until `unique` events arrived or timeout_s passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = await self.receiver_stats()
            if stats["unique"] >= unique or time.monotonic() > deadline:
                return stats
            await asyncio.sleep(poll_s)


class Lassod:
    """A lassod subprocess on its own database in `folder`."""

    def __init__(
        self, harness: Harness, folder: Path, delivery: dict[str, Any]
    ) -> None:
        self.harness = harness
        self.folder = folder
        self.port = processes.free_port()
        self.config = processes.write_config(folder, self.port, delivery)
        self.database_path = str(folder / "lassod.db")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> float:
        """Start the process; return the seconds from spawn to the first API response."""
        self.process = processes.start_lassod(self.config, self.folder / "lassod.log")
        return await processes.wait_ready(
            self.harness.session, self.base_url, self.process
        )

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def query(self, sql: str, *args: Any) -> list[tuple]:
        """Read lassod's database; call after stop, or read under WAL."""
        connection = sqlite3.connect(self.database_path)
        try:
            return connection.execute(sql, args).fetchall()
        finally:
            connection.close()
