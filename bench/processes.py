"""Start and stop the receiver and lassod as subprocesses on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from bench.receiver import run_loop

READY_TIMEOUT_S = 30.0


def run_main(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a benchmark's main coroutine, which SIGTERM cancels as Ctrl-C does.

    The cancellation runs the coroutine's finally blocks, which stop the
    receiver and lassod and remove temporary folders. By default SIGTERM
    ended the benchmark at once and left its receiver running.
    """

    async def cancellable() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await coroutine

    try:
        run_loop(cancellable())
    except asyncio.CancelledError:
        raise SystemExit(128 + signal.SIGTERM) from None


def free_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_receiver(
    listeners: int, secret: str
) -> tuple[subprocess.Popen[bytes], list[int]]:
    """Start the receiver on `listeners` ports; return it and its ports."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.receiver",
            "--listeners",
            str(listeners),
            "--secret",
            secret,
        ],
        stdout=subprocess.PIPE,
    )
    line = process.stdout.readline() if process.stdout else b""
    if not line.startswith(b"listening"):
        process.kill()
        raise RuntimeError("benchmark receiver failed to start")
    return process, [int(port) for port in line.split()[1:]]


def write_config(folder: Path, port: int, delivery: dict[str, object]) -> Path:
    """Write a lassod.toml for one scenario: default durability, loopback only."""
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        # One API key drives up to 1,000 requests a second here.
        "rate_limit_per_s = 100000.0",
        "rate_limit_burst = 100000",
        "[database]",
        f'path = "{folder / "lassod.db"}"',
        "[security]",
        "allow_private_targets = true",
        "[log]",
        'format = "json"',
        "[delivery]",
    ]
    for key, value in delivery.items():
        lines.append(f"{key} = {_toml(value)}")
    path = folder / "lassod.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return repr(value)


def start_lassod(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start `python -m lassod serve`; its log lines go to log_path."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LASSOD_")}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lassod", "--config", str(config), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )


async def wait_ready(
    session: aiohttp.ClientSession, base_url: str, process: subprocess.Popen[bytes]
) -> float:
    """Poll the API until it responds; return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"lassod exited with code {process.returncode}")
        try:
            async with session.get(base_url + "/api/v1/tables") as response:
                await response.read()
                return time.monotonic() - started
        except aiohttp.ClientConnectionError:
            await _sleep(0.005)
    raise RuntimeError("lassod did not respond within 30 s; see its lassod.log")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """Stop a process with SIGTERM, then SIGKILL after timeout_s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def peak_rss_mb(pid: int) -> float | None:
    """Return the peak resident set size of a live process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
