"""systemd integration: notify messages on a real datagram socket, and the unit."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lassod.config import ServerSettings
from lassod.daemon import Daemon
from lassod.systemd import Notifier
from tests.conftest import eventually, make_settings
from tests.ops_helpers import (
    NotifySocket,
    notify_socket,
    release_wedged,
    wedge_scheduler,
)

UNIT = Path(__file__).parent.parent / "systemd" / "lassod.service"


@pytest.fixture
def path_socket():
    with notify_socket() as bound:
        yield bound


async def test_notify_order_ready_watchdog_stopping(tmp_path, path_socket):
    address, notify = path_socket
    environ = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}
    daemon = Daemon(make_settings(tmp_path), Notifier(environ))
    await daemon.start()
    await asyncio.sleep(0.5)
    await daemon.stop()

    lines = notify.first_lines()
    assert lines[0] == "READY=1"
    assert lines[-1] == "STOPPING=1"
    pings = lines[1:-1]
    assert len(pings) >= 3
    assert set(pings) == {"WATCHDOG=1"}
    assert f"MAINPID={os.getpid()}" in notify.messages[0]


async def test_watchdog_pings_stop_when_loop_wedged(tmp_path, path_socket):
    address, notify = path_socket
    environ = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"}
    daemon = Daemon(make_settings(tmp_path), Notifier(environ))
    await daemon.start()
    scheduler = daemon.scheduler
    try:
        await eventually(lambda: _pings_at_least(notify, 2))
        await wedge_scheduler(scheduler)
        before = len(notify.first_lines())
        await asyncio.sleep(0.5)
        assert notify.first_lines()[before:] == []
    finally:
        await release_wedged(scheduler)
        await daemon.stop()


async def _pings_at_least(notify: NotifySocket, count: int) -> bool:
    return notify.first_lines().count("WATCHDOG=1") >= count


async def test_abstract_notify_socket(tmp_path):
    name = f"lassod-test-{os.getpid()}-{id(tmp_path)}"
    notify = NotifySocket(b"\0" + name.encode())
    try:
        daemon = Daemon(
            make_settings(tmp_path), Notifier({"NOTIFY_SOCKET": "@" + name})
        )
        await daemon.start()
        await daemon.stop()
        assert notify.first_lines() == ["READY=1", "STOPPING=1"]
    finally:
        notify.close()


def test_notifier_without_socket_is_disabled():
    notifier = Notifier({})

    notifier.ready("ready")
    notifier.watchdog_tick()
    notifier.stopping()

    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None


def test_watchdog_interval_is_half_of_watchdog_usec():
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval_s == 15.0
    assert Notifier({"WATCHDOG_USEC": "nonsense"}).watchdog_interval_s is None
    other_pid = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(other_pid).watchdog_interval_s is None


def test_unit_file_hardening():
    lines = set(UNIT.read_text().splitlines())

    for expected in (
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=lassod",
        "ConfigurationDirectory=lassod",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "Restart=on-failure",
        "Environment=LASSOD_DATABASE_PATH=/var/lib/lassod/lassod.db",
    ):
        assert expected in lines
    stop_timeout = next(line for line in lines if line.startswith("TimeoutStopSec="))
    default_grace_s = ServerSettings().shutdown_grace_s
    assert float(stop_timeout.split("=")[1]) > 2 * default_grace_s


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze"
)
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify checks that ExecStart exists, so point it at this environment's lassod.
    lassod = Path(sys.executable).parent / "lassod"
    text = UNIT.read_text().replace("/opt/lassod/bin/lassod", str(lassod))
    unit = tmp_path / "lassod.service"
    unit.write_text(text)

    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
