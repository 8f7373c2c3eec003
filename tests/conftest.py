"""Shared fixtures: a real lassod on a real socket and real receivers."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from lassod import logs
from lassod.clock import now_us
from lassod.config import (
    DatabaseSettings,
    DeliverySettings,
    SecuritySettings,
    ServerSettings,
    Settings,
)
from lassod.daemon import Daemon
from lassod.ids import hash_api_key, new_api_key
from lassod.store import keys as key_queries

FAST_RETRY_DELAYS_S = (0.2, 0.2, 0.2)


def make_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    """Return test settings: port 0, a temporary database, short delays."""
    # Rate limits high enough for polling loops; rate-limit tests set their own.
    server = ServerSettings(
        host="127.0.0.1",
        port=0,
        shutdown_grace_s=2.0,
        rate_limit_per_s=100_000.0,
        rate_limit_burst=100_000,
        failed_auth_per_s=100_000.0,
        failed_auth_burst=100_000,
    )
    database = DatabaseSettings(path=str(tmp_path / "lassod.db"))
    delivery = DeliverySettings(timeout_s=2.0, retry_delays_s=FAST_RETRY_DELAYS_S)
    security = SecuritySettings(allow_private_targets=True)
    settings = Settings(server=server, database=database, delivery=delivery, security=security)
    for name, values in sections.items():
        settings = dataclasses.replace(
            settings, **{name: dataclasses.replace(getattr(settings, name), **values)}
        )
    return settings


@dataclass
class Lassod:
    """A running in-process lassod with an HTTP client."""

    daemon: Daemon
    session: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.port}"

    async def new_key(self, company: str = "acme") -> str:
        key = new_api_key()
        database = self.daemon.database
        if database is None:
            raise RuntimeError("lassod is not running")
        await database.transaction(
            key_queries.insert_api_key, company, hash_api_key(key), key[:10], now_us()
        )
        return key

    async def request(
        self,
        method: str,
        path: str,
        key: str | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send a request and return (status, parsed JSON body or None)."""
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        async with self.session.request(
            method, self.base_url + path, json=json, data=data, headers=all_headers
        ) as response:
            body = await response.read()
            parsed = None
            if body and response.content_type == "application/json":
                parsed = await response.json()
            return response.status, parsed


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def start_lassod() -> AsyncIterator[Callable[[Settings], Awaitable[Lassod]]]:
    """Start lassod instances with given settings; all stop at teardown.

    Keyword options go to Daemon, such as a stub `resolver`.
    """
    started: list[Lassod] = []
    session = aiohttp.ClientSession()

    async def start(settings: Settings, **options: Any) -> Lassod:
        daemon = Daemon(settings, **options)
        await daemon.start()
        instance = Lassod(daemon, session)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        await instance.daemon.stop()
    await session.close()


@pytest.fixture
async def lassod(start_lassod: Callable[[Settings], Awaitable[Lassod]], settings: Settings) -> Lassod:
    return await start_lassod(settings)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str


Behaviour = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def answer_ok(request: web.Request, number: int) -> web.StreamResponse:
    return web.Response(status=200, text="ok")


@dataclass
class Receiver:
    """An aiohttp webhook receiver on 127.0.0.1 that records every request."""

    behaviour: Behaviour = answer_ok
    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(dict(request.headers), body, request.path))
        self.arrived.set()
        return await self.behaviour(request, len(self.received))

    def verified(self, item: Received) -> bool:
        """Check the signature by the steps the README gives receivers."""
        if self.secret is None:
            return False
        expected = "sha256=" + hmac.new(self.secret.encode(), item.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, item.headers.get("X-Lasso-Signature", ""))

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout_s):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received


@pytest.fixture
async def make_receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    runners: list[web.AppRunner] = []

    async def make(behaviour: Behaviour = answer_ok, secret: str | None = None) -> Receiver:
        receiver = Receiver(behaviour=behaviour, secret=secret)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        receiver.url = f"http://127.0.0.1:{port}/hook"
        runners.append(runner)
        return receiver

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def captured_logs() -> list[dict[str, Any]]:
    """Capture structlog events as dicts for assertions by event name."""
    import structlog

    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[capture])
    yield capture.entries
    logs.configure()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Poll check() until it returns True or the timeout passes."""
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.02)
