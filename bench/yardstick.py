"""The yardstick: a bare aiohttp client sending signed bodies, no storage."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench import seed
from lassod.delivery import build_headers
from lassod.store.deliveries import AttemptJob


def signed_job(url: str, secret: str, index: int) -> AttemptJob:
    return AttemptJob(
        delivery_id=f"dlv_yardstick{index}",
        company_id="cmp_yardstick",
        endpoint_id="tbl_yardstick",
        endpoint_kind="table",
        event_id=f"evt_yardstick{index:08d}",
        event_name="table.completed",
        body=seed.event_body("tbl_yardstick", index),
        number=1,
        attempt_id=f"att_{index}",
        started_ms=0,
        url=url,
        secret=secret,
        previous_secret=None,
        auth_header_name=None,
        auth_header_value=None,
    )


async def send_all(url: str, secret: str, count: int, concurrency: int) -> None:
    """POST `count` signed bodies with `concurrency` requests in flight."""
    jobs = [signed_job(url, secret, index) for index in range(count)]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while jobs:
                job = jobs.pop()
                headers = build_headers(job, int(time.time()))
                async with session.post(
                    job.url, data=job.body, headers=headers
                ) as response:
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
