"""GET /metrics: lassod_* metrics that follow deliveries, and access control."""

from __future__ import annotations

import asyncio
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lassod.metrics import LoopCounter, LoopHistogram, Metrics
from tests.conftest import eventually, make_settings


def sample(text: str, name: str, **labels: str) -> float:
    """Return the value of one sample in Prometheus text, 0 when absent."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return item.value
    return 0.0


async def scrape(lassod, headers: dict[str, str] | None = None) -> str:
    async with lassod.session.get(
        lassod.base_url + "/metrics", headers=headers
    ) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/plain"
        return await response.text()


async def complete_table(lassod, key: str, url: str) -> None:
    body = {"name": "T", "schema_id": "s", "source_text": "x", "webhook_url": url}
    _, table = await lassod.request("POST", "/api/v1/tables", key, json=body)
    status, _ = await lassod.request(
        "POST",
        f"/api/v1/tables/{table['id']}/status",
        key,
        json={"status": "completed"},
    )
    assert status == 200


async def test_metrics_follow_deliveries(lassod, make_receiver):
    async def fail_first(request: web.Request, number: int) -> web.Response:
        return web.Response(status=503 if number == 1 else 204)

    receiver = await make_receiver(fail_first)
    key = await lassod.new_key()
    before = await scrape(lassod)
    assert (
        sample(
            before,
            "lassod_deliveries_total",
            event="table.completed",
            outcome="succeeded",
        )
        == 0
    )

    await complete_table(lassod, key, receiver.url)

    async def delivered() -> bool:
        text = await scrape(lassod)
        labels = {"event": "table.completed", "outcome": "succeeded"}
        return sample(text, "lassod_deliveries_total", **labels) == 1

    await eventually(delivered)
    text = await scrape(lassod)
    assert (
        sample(text, "lassod_attempts_total", outcome="failed", status_class="5xx") == 1
    )
    assert (
        sample(text, "lassod_attempts_total", outcome="succeeded", status_class="2xx")
        == 1
    )
    assert sample(text, "lassod_attempt_duration_seconds_count") == 2
    assert sample(text, "lassod_scheduler_lag_seconds_count") == 2
    assert sample(text, "lassod_attempts_in_flight") == 0
    assert sample(text, "lassod_queue_depth", state="pending") == 0
    route = "/api/v1/tables/{table_id}/status"
    assert (
        sample(
            text, "lassod_api_requests_total", route=route, method="POST", status="200"
        )
        == 1
    )
    operation = "record_and_begin"
    assert (
        sample(text, "lassod_database_operation_seconds_count", operation=operation)
        >= 2
    )


async def test_lag_counted_once_per_attempt(start_lassod, tmp_path, make_receiver):
    """Deliveries parked by the per-host limit count their lag when they start."""

    async def slow(request: web.Request, number: int) -> web.Response:
        await asyncio.sleep(0.1)
        return web.Response(status=204)

    receiver = await make_receiver(slow)
    # max_concurrency 4 gives a per-host limit of 1, so four of five park.
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"max_concurrency": 4})
    )
    key = await lassod.new_key()
    for _ in range(5):
        await complete_table(lassod, key, receiver.url)
    await receiver.wait_for(5)

    async def recorded() -> bool:
        text = await scrape(lassod)
        return sample(text, "lassod_attempt_duration_seconds_count") == 5

    await eventually(recorded)
    text = await scrape(lassod)
    assert sample(text, "lassod_scheduler_lag_seconds_count") == 5
    # The last one waited behind four attempts of about 0.1 s each.
    assert sample(text, "lassod_scheduler_lag_seconds_bucket", le="0.1") < 5


async def test_metrics_count_pending_retries(start_lassod, tmp_path, make_receiver):
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"retry_delays_s": (60.0,)})
    )

    async def refuse(request: web.Request, number: int) -> web.Response:
        return web.Response(status=500)

    receiver = await make_receiver(refuse)
    key = await lassod.new_key()
    await complete_table(lassod, key, receiver.url)
    await receiver.wait_for(1)

    async def waiting_retry() -> bool:
        text = await scrape(lassod)
        return sample(text, "lassod_queue_depth", state="pending") == 1

    await eventually(waiting_retry)
    text = await scrape(lassod)
    assert (
        sample(
            text,
            "lassod_deliveries_total",
            event="table.completed",
            outcome="abandoned",
        )
        == 0
    )


async def test_metrics_token_required_when_set(start_lassod, tmp_path):
    lassod = await start_lassod(
        make_settings(tmp_path, metrics={"token": "scrape-token"})
    )

    status, body = await lassod.request("GET", "/metrics")
    assert status == 401
    assert "metrics.token" in body["message"]
    status, _ = await lassod.request(
        "GET", "/metrics", headers={"Authorization": "Bearer wrong"}
    )
    assert status == 401
    text = await scrape(lassod, {"Authorization": "Bearer scrape-token"})
    assert "lassod_attempts_in_flight" in text


async def test_metrics_rejects_client_outside_allowed(start_lassod, tmp_path):
    lassod = await start_lassod(
        make_settings(tmp_path, metrics={"allowed_clients": ("10.0.0.0/8",)})
    )

    status, body = await lassod.request("GET", "/metrics")

    assert status == 403
    assert body["error_type"] == "forbidden"
    assert "metrics.allowed_clients" in body["message"]


async def test_api_request_method_label_is_bounded():
    metrics = Metrics()

    metrics.api_request("unmatched", "BREW", 405)
    metrics.api_request("unmatched", "GET", 404)

    text = metrics.render().decode()
    assert (
        sample(
            text,
            "lassod_api_requests_total",
            route="unmatched",
            method="other",
            status="405",
        )
        == 1
    )
    assert 'method="BREW"' not in text


def without_created(text: bytes) -> list[str]:
    return [line for line in text.decode().splitlines() if "_created" not in line]


def test_loop_metrics_render_like_prometheus_client():
    observations = [0.0, 0.004, 0.005, 0.0051, 0.7, 10, 300, 301, 1e9]
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram(
        "h_seconds", "A time.", buckets=(0.005, 1, 300), registry=theirs
    )
    counter = Counter("c", "Things.", ("kind", "code"), registry=theirs)
    loop_histogram = LoopHistogram("h_seconds", "A time.", (0.005, 1, 300), ours)
    loop_counter = LoopCounter("c", "Things.", ("kind", "code"), ours)
    for value in observations:
        histogram.observe(value)
        loop_histogram.observe(value)
    for labels in [("a", "2xx"), ("b", "none"), ("a", "2xx")]:
        counter.labels(*labels).inc()
        loop_counter.inc(labels)

    rendered = without_created(generate_latest(ours))
    assert rendered == without_created(generate_latest(theirs))
    assert 'h_seconds_bucket{le="0.005"} 3.0' in rendered
    assert 'c_total{code="2xx",kind="a"} 2.0' in rendered


async def test_queue_depth_counts_parked(start_lassod, tmp_path, make_receiver):
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"max_concurrency_per_host": 1, "timeout_s": 30.0})
    )
    release = asyncio.Event()

    async def hang(request: web.Request, number: int) -> web.Response:
        await release.wait()
        return web.Response(status=200)

    receiver = await make_receiver(hang)
    key = await lassod.new_key()
    for _ in range(3):
        await complete_table(lassod, key, receiver.url)
    await receiver.wait_for(1)

    async def two_parked() -> bool:
        text = await scrape(lassod)
        return sample(text, "lassod_queue_depth", state="parked") == 2

    await eventually(two_parked)
    text = await scrape(lassod)
    assert sample(text, "lassod_queue_depth", state="in_flight") == 1
    assert sample(text, "lassod_queue_depth", state="queued") == 0
    release.set()
    await receiver.wait_for(3)

    async def none_parked() -> bool:
        text = await scrape(lassod)
        return sample(text, "lassod_queue_depth", state="parked") == 0

    await eventually(none_parked)
