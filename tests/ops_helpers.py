"""Helpers for tests of the daemon's operation: notify sockets, a wedged loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from typing import Iterator

from lassod.scheduler import Scheduler


async def wedge_scheduler(scheduler: Scheduler) -> None:
    """Make the scheduler loop hang inside its next pass, as a stuck query would.

    Returns once the loop is stuck. Cancel scheduler._task to release it.
    """
    wedged = asyncio.Event()

    async def hang(now: int) -> None:
        wedged.set()
        await asyncio.Event().wait()

    scheduler._needs_refill = lambda now: True
    scheduler._refill = hang
    scheduler._wake.set()
    await asyncio.wait_for(wedged.wait(), 5)


async def release_wedged(scheduler: Scheduler) -> None:
    """Cancel a wedged loop so that the daemon can stop."""
    if scheduler._task is not None:
        scheduler._task.cancel()
        scheduler._task = None


class NotifySocket:
    """A bound AF_UNIX datagram socket that collects notify messages."""

    def __init__(self, address: str | bytes) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(address)
        self.socket.setblocking(False)
        self.messages: list[str] = []

    def collect(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.socket.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def first_lines(self) -> list[str]:
        return [message.split("\n", 1)[0] for message in self.collect()]

    def close(self) -> None:
        self.socket.close()


@contextlib.contextmanager
def notify_socket() -> Iterator[tuple[str, NotifySocket]]:
    """Yield (path, socket) for a notify socket bound in a new folder under /tmp."""
    # A socket path must fit in 108 bytes, which pytest's tmp_path may not.
    folder = tempfile.mkdtemp(prefix="lassod-notify-", dir="/tmp")
    address = os.path.join(folder, "notify")
    notify = NotifySocket(address)
    try:
        yield address, notify
    finally:
        notify.close()
        shutil.rmtree(folder)
