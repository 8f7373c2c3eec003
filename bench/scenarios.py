"""The benchmark scenarios; each returns a dict of figures."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any


from bench import seed, yardstick
from bench.harness import SECRET, Harness, Lassod
from bench.processes import peak_rss_mb
from lassod.clock import now_ms

FUTURE_MS = 3_600_000


@dataclass(frozen=True)
class Sizes:
    """Counts and time limits of one run; --quick uses much smaller ones."""

    throughput_events: int
    latency_rate: int
    latency_seconds: float
    queue_pending: int
    crash_pending: int
    failing_events: int
    failing_timeout_s: float
    concurrency: int = 100
    drain_timeout_s: float = 120.0


FULL = Sizes(50_000, 1_000, 5.0, 1_000_000, 100_000, 5_000, 2.0)
QUICK = Sizes(2_000, 200, 1.0, 20_000, 3_000, 500, 0.5, drain_timeout_s=30.0)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _one_host(sizes: Sizes) -> dict[str, Any]:
    """Return delivery settings for scenarios whose targets share one host.

    The default per-host limit is a quarter of max_concurrency. These
    scenarios measure the whole sender, so they lift it to max_concurrency.
    """
    return {
        "max_concurrency": sizes.concurrency,
        "max_concurrency_per_host": sizes.concurrency,
    }


def _rate(stats: dict[str, Any]) -> float | None:
    if stats["total"] < 2 or stats["last_s"] == stats["first_s"]:
        return None
    return (stats["total"] - 1) / (stats["last_s"] - stats["first_s"])


async def throughput(harness: Harness, sizes: Sizes) -> dict[str, Any]:
    """Drain N queued events; measure POST /api/v1/tables latency meanwhile."""
    count = sizes.throughput_events
    folder = harness.new_folder("throughput")
    lassod = Lassod(harness, folder, _one_host(sizes))
    seeded = await seed.seed(
        lassod.database_path, [harness.receiver_url + "/ok"], SECRET, [now_ms()] * count
    )
    await harness.receiver_command("/_reset")

    await lassod.start()
    done = asyncio.Event()
    api = asyncio.create_task(_api_latencies(harness, lassod, seeded.api_key, done))
    stats = await harness.wait_for_receipts(count, sizes.drain_timeout_s)
    done.set()
    api_ms = await api
    lassod.stop()

    recorded = lassod.query(
        "SELECT COUNT(*) FROM attempts WHERE outcome = 'succeeded'"
    )[0][0]
    return {
        "events": count,
        "received": stats["unique"],
        "duplicates": stats["total"] - stats["unique"],
        "attempts_recorded": recorded,
        "deliveries_per_s": _rate(stats),
        "signatures_verified": stats["verified"],
        "bad_signatures": stats["bad_signatures"],
        "api_under_load": {
            "requests": len(api_ms),
            "p50_ms": percentile(api_ms, 0.5),
            "p99_ms": percentile(api_ms, 0.99),
        },
    }


async def _api_latencies(
    harness: Harness, lassod: Lassod, api_key: str, done: asyncio.Event
) -> list[float]:
    """POST /api/v1/tables about 50 times a second until `done` is set."""
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {
        "name": "under load",
        "schema_id": "schema_bench",
        "source_text": "benchmark",
        "webhook_url": harness.receiver_url + "/ok",
    }
    latencies: list[float] = []
    while not done.is_set() and len(latencies) < 10_000:
        started = time.perf_counter()
        async with harness.session.post(
            lassod.base_url + "/api/v1/tables", json=body, headers=headers
        ) as response:
            await response.read()
            if response.status != 201:
                raise RuntimeError(f"POST /api/v1/tables returned {response.status}")
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    return latencies


async def yardstick_run(harness: Harness, sizes: Sizes) -> dict[str, Any]:
    """Send the same signed bodies from a bare aiohttp client, no storage."""
    count = sizes.throughput_events
    await harness.receiver_command("/_reset")
    await yardstick.send_all(
        harness.receiver_url + "/ok", SECRET, count, sizes.concurrency
    )
    stats = await harness.wait_for_receipts(count, sizes.drain_timeout_s)
    return {
        "events": count,
        "received": stats["unique"],
        "deliveries_per_s": _rate(stats),
    }


async def latency(harness: Harness, sizes: Sizes) -> dict[str, Any]:
    """Complete tables through the API at a steady rate; time each event's trip."""
    count = round(sizes.latency_rate * sizes.latency_seconds)
    folder = harness.new_folder("latency")
    lassod = Lassod(harness, folder, _one_host(sizes))
    seeded = await seed.seed_tables(
        lassod.database_path, harness.receiver_url + "/ok", SECRET, count
    )
    await harness.receiver_command("/_reset")

    await lassod.start()
    acknowledged = await _complete_tables(harness, lassod, seeded, sizes.latency_rate)
    stats = await harness.wait_for_receipts(count, 30.0)
    receipts = (await harness.receiver_stats(receipts=True))["receipts"]
    lassod.stop()

    rows = lassod.query(
        "SELECT d.endpoint_id, d.event_id, a.started_ms - d.created_ms"
        " FROM deliveries d JOIN attempts a ON a.delivery_id = d.id AND a.number = 1"
    )
    trip_ms = [
        (receipts[event_id] - acknowledged[table_id]) * 1000
        for table_id, event_id, _ in rows
        if event_id in receipts and table_id in acknowledged
    ]
    lag_ms = [float(row[2]) for row in rows]
    return {
        "events": count,
        "rate_per_s": sizes.latency_rate,
        "received": stats["unique"],
        "api_to_receipt_p50_ms": percentile(trip_ms, 0.5),
        "api_to_receipt_p99_ms": percentile(trip_ms, 0.99),
        "scheduler_lag_p50_ms": percentile(lag_ms, 0.5),
        "scheduler_lag_p99_ms": percentile(lag_ms, 0.99),
    }


async def _complete_tables(
    harness: Harness, lassod: Lassod, seeded: seed.Seeded, rate: int
) -> dict[str, float]:
    """Report each table completed at `rate` per second; return 2xx times."""
    headers = {"Authorization": f"Bearer {seeded.api_key}"}
    acknowledged: dict[str, float] = {}

    async def complete(table_id: str) -> None:
        url = f"{lassod.base_url}/api/v1/tables/{table_id}/status"
        async with harness.session.post(
            url, json={"status": "completed", "total_rows": 1}, headers=headers
        ) as response:
            await response.read()
            if response.status == 200:
                acknowledged[table_id] = time.time()

    started = time.monotonic()
    tasks = []
    for index, table_id in enumerate(seeded.endpoint_ids):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(complete(table_id)))
    await asyncio.gather(*tasks)
    return acknowledged


async def queue_scale(harness: Harness, sizes: Sizes) -> dict[str, Any]:
    """Start on N future deliveries plus one due now: RSS and start-up times."""
    count = sizes.queue_pending
    folder = harness.new_folder("queue")
    lassod = Lassod(harness, folder, _one_host(sizes))
    later = now_ms() + FUTURE_MS
    seeding_started = time.monotonic()
    await seed.seed(
        lassod.database_path,
        [harness.receiver_url + "/ok"],
        SECRET,
        [0] + [later] * count,
    )
    seeding_s = time.monotonic() - seeding_started
    await harness.receiver_command("/_reset")
    spawned = time.time()
    ready_s = await lassod.start()
    stats = await harness.wait_for_receipts(1, 30.0, poll_s=0.01)
    await asyncio.sleep(1.0)
    rss_mb = peak_rss_mb(lassod.process.pid) if lassod.process else None
    lassod.stop()
    return {
        "pending": count,
        "seeding_s": seeding_s,
        "start_to_ready_s": ready_s,
        "start_to_first_delivery_s": (stats["first_s"] - spawned)
        if stats["first_s"]
        else None,
        "peak_rss_mb": rss_mb,
    }


async def crash_recovery(harness: Harness, sizes: Sizes) -> dict[str, Any]:
    """SIGKILL lassod mid-drain, restart it, and count what arrives."""
    count = sizes.crash_pending
    folder = harness.new_folder("crash")
    # Short retry delays so attempts cut off by the kill are retried within the run.
    delivery = {**_one_host(sizes), "retry_delays_s": [0.5, 1.0, 2.0]}
    lassod = Lassod(harness, folder, delivery)
    await seed.seed(
        lassod.database_path, [harness.receiver_url + "/ok"], SECRET, [now_ms()] * count
    )
    await harness.receiver_command("/_reset")

    await lassod.start()
    before = await harness.wait_for_receipts(
        count // 10, sizes.drain_timeout_s, poll_s=0.005
    )
    lassod.kill()
    at_kill = await harness.receiver_stats()
    in_flight = lassod.query("SELECT COUNT(*) FROM attempts WHERE outcome IS NULL")[0][
        0
    ]

    await harness.receiver_command("/_mark")
    restarted = time.time()
    await lassod.start()
    stats = await harness.wait_for_receipts(count, sizes.drain_timeout_s)
    lassod.stop()

    first_s = stats["mark_s"]
    return {
        "pending": count,
        "received_before_kill": at_kill["unique"],
        "attempts_in_flight_at_kill": in_flight,
        "restart_to_first_delivery_s": (first_s - restarted) if first_s else None,
        "received": stats["unique"],
        "lost": count - stats["unique"],
        "duplicates": stats["total"] - stats["unique"],
        "killed_after_receipts": before["unique"],
    }


async def failing_receivers(
    harness: Harness, sizes: Sizes, healthy_rate: float | None
) -> dict[str, Any]:
    """Send 20 % of deliveries to a host that hangs until the timeout.

    The five endpoints are five ports of the receiver, so five hosts to the
    per-host limit, which keeps its default here as in a real deployment.
    """
    count = sizes.failing_events
    folder = harness.new_folder("failing")
    delivery = {
        "max_concurrency": sizes.concurrency,
        "timeout_s": sizes.failing_timeout_s,
    }
    lassod = Lassod(harness, folder, delivery)
    *healthy_hosts, hanging_host = harness.receiver_urls
    urls = [url + "/ok" for url in healthy_hosts] + [hanging_host + "/hang"]
    await seed.seed(lassod.database_path, urls, SECRET, [now_ms()] * count)
    healthy = count - count // len(urls)
    await harness.receiver_command("/_reset")
    await lassod.start()
    limit_s = max(sizes.drain_timeout_s / 2, 1.0)
    stats = await harness.wait_for_receipts(healthy, limit_s)
    lassod.stop()
    rate = _rate(stats)
    return {
        "events": count,
        "healthy_events": healthy,
        "healthy_received": stats["unique"],
        "timeout_s": sizes.failing_timeout_s,
        "healthy_deliveries_per_s": rate,
        "ratio_to_throughput": (rate / healthy_rate) if rate and healthy_rate else None,
    }
