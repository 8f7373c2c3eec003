"""The CPU cost of lassod's delivery engine, with no HTTP, against a bare request.

Run with `python -m bench.engine`. It seeds a temporary database with due
deliveries, then drains them through lassod's real Scheduler, recorder,
Database, metrics and JSON log lines. Only the Sender is left out (its
headers, signatures and request), and each attempt succeeds at once. In the
same run, the yardstick's bare aiohttp client sends the same number of
signed bodies to the benchmark receiver on 127.0.0.1.

It reports CPU time per delivery rather than wall time, which the shared
machine disturbs less. The engine's time is split into the event loop thread
and the other threads (mostly SQLite), and each part is divided by the bare
client's CPU time per request. `python -m bench.sender` shows that lassod's
Sender costs about what a bare request does. The throughput goal of 0.75 of
the yardstick then leaves the engine a third of a bare request per delivery,
for both threads together while the SQLite thread holds the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import harness, processes, seed, yardstick
from lassod import logs
from lassod.clock import now_ms
from lassod.config import DeliverySettings
from lassod.daemon import freeze_startup_objects
from lassod.delivery import AttemptResult
from lassod.metrics import Metrics
from lassod.scheduler import Scheduler
from lassod.store import Database
from lassod.store.deliveries import AttemptJob, count_pending

# The engine's sender makes no request, so this URL is never contacted.
UNUSED_URL = "http://127.0.0.1:9/engine"
DRAIN_TIMEOUT_S = 300.0


class AnsweringSender:
    """A stand-in for lassod's Sender that makes every attempt succeed at once."""

    async def send(self, job: AttemptJob) -> AttemptResult:
        await asyncio.sleep(0)
        return AttemptResult(
            succeeded=True, duration_ms=0, status_code=204, response_excerpt=""
        )


def succeeded_attempts(connection: sqlite3.Connection) -> int:
    row = connection.execute(
        "SELECT COUNT(*) FROM attempts WHERE outcome = 'succeeded'"
    )
    return int(row.fetchone()[0])


async def drain_engine(folder: Path, count: int, concurrency: int) -> dict[str, float]:
    """Drain `count` seeded deliveries through the engine and return CPU figures."""
    path = str(folder / "engine.db")
    await seed.seed(path, [UNUSED_URL], harness.SECRET, [now_ms()] * count)
    with open(folder / "engine.log", "w") as log_file:
        logs.configure("info", "json", log_file)
        database = await Database.open(path)
        settings = DeliverySettings(
            max_concurrency=concurrency, max_concurrency_per_host=concurrency
        )
        sender: Any = AnsweringSender()
        scheduler = Scheduler(database, sender, settings, Metrics())
        freeze_startup_objects()
        started = time.perf_counter()
        process_started = time.process_time()
        loop_started = time.thread_time()
        try:
            await scheduler.start()
            deadline = started + DRAIN_TIMEOUT_S
            while await database.read(count_pending):
                if time.perf_counter() > deadline:
                    raise RuntimeError(
                        "the engine did not drain its queue within"
                        f" {DRAIN_TIMEOUT_S:.0f} s"
                    )
                await asyncio.sleep(0.02)
            loop_s = time.thread_time() - loop_started
            process_s = time.process_time() - process_started
            elapsed = time.perf_counter() - started
            succeeded = await database.read(succeeded_attempts)
            if succeeded != count:
                raise RuntimeError(
                    f"{succeeded} of {count} attempts were recorded as succeeded"
                )
        finally:
            await scheduler.stop(5.0)
            await database.close()
            logs.flush()
            gc.unfreeze()
    return {
        "deliveries_per_s": count / elapsed,
        "loop_us": loop_s / count * 1e6,
        "other_us": (process_s - loop_s) / count * 1e6,
        "loop_busy": loop_s / elapsed,
    }


async def bare_cpu_us(url: str, count: int, concurrency: int) -> float:
    """Return the bare client's CPU time per request, in microseconds."""
    started = time.process_time()
    await yardstick.send_all(url, harness.SECRET, count, concurrency)
    return (time.process_time() - started) / count * 1e6


async def run(rounds: int, count: int, concurrency: int) -> None:
    receiver, ports = processes.start_receiver(1, harness.SECRET)
    url = f"http://127.0.0.1:{ports[0]}/engine"
    try:
        for number in range(1, rounds + 1):
            bare = await bare_cpu_us(url, count, concurrency)
            with tempfile.TemporaryDirectory(prefix="lassod-engine-") as folder:
                engine = await drain_engine(Path(folder), count, concurrency)
            loop, other = engine["loop_us"], engine["other_us"]
            print(
                f"round {number}: bare request {bare:.0f} µs CPU;"
                f" engine per delivery: event loop {loop:.0f} µs ({loop / bare:.2f}"
                f" of a bare request), other threads {other:.0f} µs"
                f" ({other / bare:.2f}); {engine['deliveries_per_s']:,.0f}/s,"
                f" event loop busy {engine['loop_busy']:.0%}",
                flush=True,
            )
    finally:
        processes.stop(receiver)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    options = parser.parse_args()
    for name in ("rounds", "deliveries", "concurrency"):
        if getattr(options, name) < 1:
            parser.error(f"--{name} must be at least 1")
    processes.run_main(run(options.rounds, options.deliveries, options.concurrency))


if __name__ == "__main__":
    main()
