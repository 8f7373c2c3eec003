"""Wall-clock time as integer milliseconds and its ISO 8601 renderings."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_ms() -> int:
    """Return the current Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def now_us() -> int:
    """Return the current Unix time in microseconds."""
    return time.time_ns() // 1_000


def iso_ms(epoch_ms: int) -> str:
    """Render milliseconds as YYYY-MM-DDTHH:MM:SS.mmmZ."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def iso_us(epoch_us: int) -> str:
    """Render microseconds as YYYY-MM-DDTHH:MM:SS.ffffffZ."""
    seconds, micros = divmod(epoch_us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{micros:06d}Z"


def parse_iso(text: str) -> int:
    """Parse an ISO 8601 time with a zone into Unix microseconds.

    Raises ValueError for text without a zone, so no naive time gets in.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("time has no zone")
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
