"""Webhook events: names and the JSON envelope every delivery sends."""

from __future__ import annotations

from typing import Any

import orjson

from lassod.clock import iso_ms

TABLE_COMPLETED = "table.completed"
TABLE_FAILED = "table.failed"


def build_body(name: str, created_ms: int, data: dict[str, Any]) -> bytes:
    """Serialise the envelope once; every attempt sends these exact bytes."""
    return orjson.dumps({"event": name, "timestamp": iso_ms(created_ms), "data": data})
