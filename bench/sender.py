"""lassod's Sender alone against the yardstick's bare client, in alternating rounds.

Run with `python -m bench.sender`. Both send the same signed bodies to the
benchmark receiver on 127.0.0.1 with the same number of requests in flight,
with no scheduler and no storage. lassod's Sender adds its own session
settings, a timeout per request, the target check and the response excerpt.
If it keeps pace with the bare client, the gap in the throughput scenario
comes from the rest of the delivery path, not from sending.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench import harness, processes, yardstick
from lassod.config import DeliverySettings, SecuritySettings
from lassod.delivery import Sender


async def send_with_sender(url: str, count: int, concurrency: int) -> float:
    """Send `count` attempts through one Sender and return the requests per second."""
    # The receiver listens on 127.0.0.1, which the default settings block.
    security = SecuritySettings(allow_private_targets=True)
    sender = Sender.create(DeliverySettings(), security)
    jobs = [yardstick.signed_job(url, harness.SECRET, index) for index in range(count)]
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while jobs:
            result = await sender.send(jobs.pop())
            if not result.succeeded:
                failures += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await sender.close()
    if failures:
        raise RuntimeError(f"{failures} of {count} attempts failed")
    return count / (time.perf_counter() - started)


async def send_bare(url: str, count: int, concurrency: int) -> float:
    started = time.perf_counter()
    await yardstick.send_all(url, harness.SECRET, count, concurrency)
    return count / (time.perf_counter() - started)


async def run(rounds: int, count: int, concurrency: int) -> None:
    receiver, ports = processes.start_receiver(1, harness.SECRET)
    url = f"http://127.0.0.1:{ports[0]}/sender"
    try:
        for number in range(1, rounds + 1):
            bare = await send_bare(url, count, concurrency)
            sent = await send_with_sender(url, count, concurrency)
            print(
                f"round {number}: bare client {bare:,.0f}/s,"
                f" Sender {sent:,.0f}/s, ratio {sent / bare:.2f}",
                flush=True,
            )
    finally:
        processes.stop(receiver)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sender", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    options = parser.parse_args()
    processes.run_main(run(options.rounds, options.requests, options.concurrency))


if __name__ == "__main__":
    main()
