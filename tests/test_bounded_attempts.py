"""Bounded work per attempt: hostile receivers cannot hold memory or slots."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from aiohttp import web

from lassod.config import DeliverySettings, SecuritySettings
from lassod.delivery import DEADLINE_CHECK_S, Sender
from tests.conftest import eventually, make_settings
from tests.security_helpers import attempt_rows, complete_table, create_table
from tests.test_retry import job as retry_job

CHUNK = b"x" * 65536


async def deliver(lassod, url):
    key = await lassod.new_key()
    status, table = await create_table(lassod, key, webhook_url=url)
    assert status == 201, table
    await complete_table(lassod, key, table["id"])
    return table["id"]


async def finished_attempts(lassod, count):
    async def enough() -> bool:
        rows = await attempt_rows(lassod)
        return len([row for row in rows if row.outcome is not None]) >= count

    await eventually(enough)
    return await attempt_rows(lassod)


async def test_endless_body_read_up_to_limit(start_lassod, tmp_path, make_receiver):
    written = {"bytes": 0, "cut_off": False}

    async def endless(request: web.Request, number: int) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        try:
            # Bounded: 4 GiB or 20 s, far beyond what lassod may read.
            deadline = time.monotonic() + 20
            while written["bytes"] < 4 * 1024**3 and time.monotonic() < deadline:
                await response.write(CHUNK)
                written["bytes"] += len(CHUNK)
        except (ConnectionError, RuntimeError):
            written["cut_off"] = True
        return response

    receiver = await make_receiver(endless)
    lassod = await start_lassod(make_settings(tmp_path, delivery={"timeout_s": 5.0}))

    await deliver(lassod, receiver.url)

    [row] = await finished_attempts(lassod, 1)
    assert row.status_code == 200
    assert row.duration_ms < 2000
    assert len(row.response_excerpt) == 1024
    await eventually(lambda: _true_when(written["cut_off"]))
    # What the receiver wrote beyond 64 KiB sat in socket buffers, unread.
    assert written["bytes"] < 16 * 1024 * 1024


async def _true_when(value: bool) -> bool:
    return value


async def test_ten_megabyte_body_excerpt_kept(start_lassod, tmp_path, make_receiver):
    async def huge(request: web.Request, number: int) -> web.Response:
        return web.Response(status=500, body=b"e" * (10 * 1024 * 1024))

    receiver = await make_receiver(huge)
    settings = make_settings(
        tmp_path, delivery={"retry_delays_s": (), "timeout_s": 5.0}
    )
    lassod = await start_lassod(settings)

    await deliver(lassod, receiver.url)

    [row] = await finished_attempts(lassod, 1)
    assert row.status_code == 500
    assert row.outcome == "failed"
    assert row.response_excerpt == "e" * 1024
    assert row.duration_ms < 2000


async def start_trickling_server(stop: asyncio.Event) -> tuple[asyncio.Server, int]:
    """A raw HTTP server that sends its response headers one byte a second."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 30 + b"\r\n\r\n"
        try:
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                if stop.is_set():
                    break
                await asyncio.sleep(1.0)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_trickled_headers_cut_off_at_timeout(start_lassod, tmp_path):
    stop = asyncio.Event()
    server, port = await start_trickling_server(stop)
    settings = make_settings(
        tmp_path, delivery={"timeout_s": 1.5, "retry_delays_s": ()}
    )
    lassod = await start_lassod(settings)
    try:
        await deliver(lassod, f"http://127.0.0.1:{port}/hook")

        [row] = await finished_attempts(lassod, 1)
    finally:
        stop.set()
        server.close()
    assert row.error_kind == "timeout"
    assert row.status_code is None
    assert 1400 <= row.duration_ms < 2500


async def test_hanging_receiver_does_not_delay_healthy_one(
    start_lassod, tmp_path, make_receiver
):
    release = asyncio.Event()
    active = {"now": 0, "max": 0}

    async def hang(request: web.Request, number: int) -> web.Response:
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        try:
            await asyncio.wait_for(release.wait(), 10)
        finally:
            active["now"] -= 1
        return web.Response(status=204)

    hanging = await make_receiver(hang)
    healthy = await make_receiver()
    delivery = {"max_concurrency": 4, "timeout_s": 4.0, "retry_delays_s": ()}
    lassod = await start_lassod(make_settings(tmp_path, delivery=delivery))
    try:
        for _ in range(8):
            await deliver(lassod, hanging.url)
        await hanging.wait_for(1)
        started = time.monotonic()

        await deliver(lassod, healthy.url)
        await healthy.wait_for(1, timeout_s=3.0)
        waited_s = time.monotonic() - started
    finally:
        release.set()
    assert waited_s < 1.0
    # max_concurrency 4 gives a per-host limit of 1.
    assert active["max"] == 1
    assert len(hanging.received) == 1


async def test_connection_is_reused_only_after_a_whole_body(
    start_lassod, tmp_path, make_receiver
):
    """A body that arrived whole keeps the connection; one cut short drops it."""
    ports: dict[str, list[int]] = {"short": [], "long": []}

    async def answer(request: web.Request, number: int) -> web.Response:
        kind = "long" if request.path.endswith("/long") else "short"
        ports[kind].append(request.transport.get_extra_info("peername")[1])
        return web.Response(status=200, body=b"k" * (4 * 1024 * 1024 if kind == "long" else 2))

    receiver = await make_receiver(answer)
    settings = make_settings(tmp_path, delivery={"response_max_bytes": 1024})
    lassod = await start_lassod(settings)

    for index, kind in enumerate(["short", "short", "long", "long"]):
        await deliver(lassod, f"{receiver.url}/{kind}")
        rows = await finished_attempts(lassod, index + 1)

    excerpts = sorted(row.response_excerpt for row in rows)
    assert excerpts == ["k" * 2, "k" * 2, "k" * 1024, "k" * 1024]
    assert ports["short"][0] == ports["short"][1]
    assert ports["long"][0] != ports["long"][1]


async def start_raw_server(head: bytes) -> tuple[asyncio.Server, int]:
    """Send `head` in reply to every request, then keep the connection open."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        await writer.drain()
        try:
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def local_sender(timeout_s: float) -> Sender:
    return Sender.create(
        DeliverySettings(timeout_s=timeout_s),
        SecuritySettings(allow_private_targets=True),
    )


async def send_to(sender: Sender, port: int):
    job = dataclasses.replace(retry_job(), url=f"http://127.0.0.1:{port}/hook")
    return await sender.send(job)


async def test_send_to_silent_receiver_times_out():
    server, port = await start_raw_server(b"")
    sender = local_sender(0.3)
    started = time.monotonic()
    try:
        result = await send_to(sender, port)
    finally:
        await sender.close()
        server.close()
    elapsed = time.monotonic() - started

    assert result.error_kind == "timeout"
    assert not result.succeeded
    assert 0.3 <= elapsed < 0.3 + DEADLINE_CHECK_S + 0.25


async def test_send_with_stalled_body_keeps_status():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nthanks"
    server, port = await start_raw_server(head)
    sender = local_sender(0.3)
    try:
        result = await send_to(sender, port)
    finally:
        await sender.close()
        server.close()

    assert result.succeeded
    assert result.status_code == 200
    assert result.response_excerpt == "thanks"
    # The per-host limit treats it as a timeout, although it succeeded.
    assert result.hit_deadline


async def test_send_with_whole_body_not_at_deadline():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nthanks"
    server, port = await start_raw_server(head)
    sender = local_sender(0.3)
    try:
        result = await send_to(sender, port)
    finally:
        await sender.close()
        server.close()

    assert result.succeeded
    assert not result.hit_deadline


async def test_send_stopped_midway_raises_cancelled():
    server, port = await start_raw_server(b"")
    sender = local_sender(5.0)
    try:
        task = asyncio.create_task(send_to(sender, port))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await sender.close()
        server.close()


async def test_send_stopped_after_deadline_raises_cancelled():
    """Both cancel the send: the deadline's is taken back, the stop's stays."""
    server, port = await start_raw_server(b"")
    sender = local_sender(0.1)
    try:
        task = asyncio.create_task(send_to(sender, port))
        await asyncio.sleep(0.01)
        # Expire the send's deadline and ask for a stop in the same pass.
        [queue] = sender._deadlines._queues.values()
        queue[0].when = 0.0
        sender._deadlines._check(asyncio.get_running_loop())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await sender.close()
        server.close()


async def test_finished_sends_leave_no_deadlines(make_receiver):
    receiver = await make_receiver()
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    sender = local_sender(0.5)
    try:
        results = await asyncio.gather(*(send_to(sender, port) for _ in range(50)))
        await asyncio.sleep(3 * DEADLINE_CHECK_S)
        assert sender._deadlines._queues == {}
        assert sender._deadlines._timer is None
    finally:
        await sender.close()

    assert all(result.succeeded for result in results)
