"""The benchmark's output: machine details, a JSON document and a text table."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path
from typing import Any

import orjson


def machine() -> dict[str, Any]:
    """Describe the machine: cores, CPU model, Python version and event loop."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "event_loop": loop,
    }


def document(
    results: dict[str, Any], sizes: Any, quick: bool, duration_s: float
) -> dict[str, Any]:
    lassod_rate = results.get("throughput", {}).get("deliveries_per_s")
    yardstick_rate = results.get("yardstick", {}).get("deliveries_per_s")
    ratio = lassod_rate / yardstick_rate if lassod_rate and yardstick_rate else None
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": "quick" if quick else "full",
        "duration_s": round(duration_s, 1),
        "machine": machine(),
        "sizes": dataclasses.asdict(sizes),
        "throughput_ratio_to_yardstick": ratio,
        "results": results,
    }


def write(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def table(document: dict[str, Any]) -> str:
    """Render every figure as `scenario  figure  value` rows."""
    rows = [
        ("run", "mode", document["mode"]),
        ("run", "duration_s", document["duration_s"]),
    ]
    for key, value in document["machine"].items():
        rows.append(("machine", key, value))
    rows.append(
        ("throughput", "ratio_to_yardstick", document["throughput_ratio_to_yardstick"])
    )
    for scenario, figures in document["results"].items():
        for key, value in _flatten(figures):
            rows.append((scenario, key, value))
    width = max(len(row[1]) for row in rows)
    return "\n".join(f"{a:<12} {b:<{width}}  {_format(c)}" for a, b, c in rows)


def _flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    flat = []
    for key, value in figures.items():
        if isinstance(value, dict):
            flat.extend(_flatten(value, f"{prefix}{key}."))
        else:
            flat.append((prefix + key, value))
    return flat


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    if value is None:
        return "-"
    return str(value)
