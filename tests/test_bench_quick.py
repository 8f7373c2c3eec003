"""The benchmark's quick mode runs end to end and writes its JSON result.

A smoke test only: it never checks a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_module(module: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )


@pytest.mark.timeout(120)
def test_quick_benchmark_writes_results(tmp_path):
    output = tmp_path / "quick.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    document = json.loads(output.read_text())
    assert document["mode"] == "quick"
    results = document["results"]
    assert set(results) == {
        "throughput",
        "yardstick",
        "latency",
        "queue",
        "crash",
        "failing",
    }
    assert results["throughput"]["received"] == results["throughput"]["events"]
    assert results["throughput"]["attempts_recorded"] == results["throughput"]["events"]
    assert results["latency"]["received"] == results["latency"]["events"]
    assert results["crash"]["lost"] == 0
    failing = results["failing"]
    assert failing["healthy_received"] == failing["healthy_events"]
    assert results["throughput"]["bad_signatures"] == 0


@pytest.mark.timeout(60)
def test_gil_measurement_runs(tmp_path):
    completed = run_module("bench.gil", "--deliveries", "300", "--group", "50")

    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "main thread idle",
        "main thread busy",
    ]
    # 300 deliveries in groups of 50, plus the group that records the last outcomes.
    assert all("7 groups of 50" in line for line in lines)


@pytest.mark.timeout(60)
def test_sender_comparison_runs():
    completed = run_module(
        "bench.sender", "--rounds", "2", "--requests", "300", "--concurrency", "20"
    )

    # A failed attempt raises, so a zero exit means all 600 Sender attempts got a 2xx.
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["round 1", "round 2"]
    assert all("Sender" in line and "ratio" in line for line in lines)


@pytest.mark.timeout(60)
def test_engine_measurement_runs():
    completed = run_module("bench.engine", "--rounds", "1", "--deliveries", "300")

    # The engine raises unless all 300 attempts are recorded as succeeded.
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["round 1"]
    assert "bare request" in lines[0]
    assert "event loop busy" in lines[0]
