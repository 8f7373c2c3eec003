"""Run the lassod benchmark: `python -m bench [--quick] [--only NAME ...]`."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import processes, report, scenarios
from bench.harness import Harness

NAMES = ("throughput", "yardstick", "latency", "queue", "crash", "failing")
RESULTS = Path(__file__).parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark lassod against a bare aiohttp client on 127.0.0.1.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small counts: a smoke run of a few seconds",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=NAMES,
        metavar="NAME",
        help=f"run only these scenarios ({', '.join(NAMES)})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help="JSON result file (default: bench/results/<UTC time>.json)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=100,
        metavar="N",
        help="requests in flight for lassod (max_concurrency) and the yardstick",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder with each scenario's database and log",
    )
    return parser


async def run(
    sizes: scenarios.Sizes, names: tuple[str, ...], keep: bool
) -> dict[str, Any]:
    harness = Harness(keep)
    results: dict[str, Any] = {}
    try:
        if "throughput" in names:
            results["throughput"] = await scenarios.throughput(harness, sizes)
        if "yardstick" in names:
            results["yardstick"] = await scenarios.yardstick_run(harness, sizes)
        if "latency" in names:
            results["latency"] = await scenarios.latency(harness, sizes)
        if "queue" in names:
            results["queue"] = await scenarios.queue_scale(harness, sizes)
        if "crash" in names:
            results["crash"] = await scenarios.crash_recovery(harness, sizes)
        if "failing" in names:
            healthy = results.get("throughput", {}).get("deliveries_per_s")
            results["failing"] = await scenarios.failing_receivers(
                harness, sizes, healthy
            )
    finally:
        await harness.close()
    return results


def main() -> None:
    args = build_parser().parse_args()
    sizes = scenarios.QUICK if args.quick else scenarios.FULL
    sizes = dataclasses.replace(sizes, concurrency=args.concurrency)
    names = tuple(args.only) if args.only else NAMES
    started = time.time()
    results: dict[str, Any] = {}

    async def go() -> None:
        results.update(await run(sizes, names, args.keep))

    processes.run_main(go())
    if args.keep:
        print("kept the scenario folders under " + tempfile.gettempdir())
    document = report.document(results, sizes, args.quick, time.time() - started)
    output = (
        args.output
        or RESULTS / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    report.write(document, output)
    print(report.table(document))
    print(f"results written to {output}")


if __name__ == "__main__":
    main()
