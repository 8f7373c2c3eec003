"""systemd service notifications: READY, STOPPING and watchdog pings.

Speaks the sd_notify datagram protocol directly: each message is a datagram
of KEY=VALUE lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET. A name
starting with "@" is a socket in the abstract namespace. Without
$NOTIFY_SOCKET every call does nothing, so lassod runs the same outside
systemd.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Mapping

from lassod.logs import logger


class Notifier:
    """Send service state changes to systemd's notify socket, if there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self._address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval_s = _watchdog_interval_s(environ)
        self._last_ping = 0.0
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")

    def reloading(self) -> None:
        monotonic_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={monotonic_us}")

    def reloaded(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def watchdog_tick(self) -> None:
        """Ping the watchdog if half its interval has passed since the last ping.

        The scheduler loop calls this on every pass, so pings stop when the
        loop stops turning and systemd restarts the service.
        """
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval_s:
            self._last_ping = now
            self._send("WATCHDOG=1")

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as error:
            # Logged once: a vanished notify socket would otherwise log on
            # every watchdog ping.
            if not self._failed:
                self._failed = True
                logger.warning("systemd_notify_failed", error=str(error))


def _socket_address(name: str) -> str | bytes | None:
    if not name:
        return None
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    # NOTE: vsock addresses (vsock:CID:PORT) are not supported.
    logger.warning("systemd_notify_socket_unsupported", notify_socket=name)
    return None


def _watchdog_interval_s(environ: Mapping[str, str]) -> float | None:
    """Return half of $WATCHDOG_USEC in seconds, or None without a watchdog."""
    text = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2_000_000
