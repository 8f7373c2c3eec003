"""The event loop that `lassod serve` runs the daemon in, with or without uvloop."""

from __future__ import annotations

import sys

import pytest

from lassod import cli


def test_event_loop_has_no_handled_exception():
    seen = []

    async def record() -> None:
        seen.append(sys.exception())

    cli._run_event_loop(record())

    assert seen == [None]


def test_event_loop_error_has_no_context():
    async def fail() -> None:
        raise RuntimeError("failed")

    with pytest.raises(RuntimeError) as raised:
        cli._run_event_loop(fail())

    assert raised.value.__context__ is None
