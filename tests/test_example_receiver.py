"""The example receiver's command line, run as the README shows it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RECEIVER = Path(__file__).resolve().parent.parent / "examples" / "receiver.py"


@pytest.mark.parametrize("port", ["0", "65536", "9223372036854775808", "http"])
def test_receiver_rejects_invalid_port(port):
    result = subprocess.run(
        [sys.executable, str(RECEIVER), "--port", port],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert result.stderr.endswith(
        f"error: argument --port: expected a port from 1 to 65535, got {port!r}\n"
    )
    assert result.stdout == ""
