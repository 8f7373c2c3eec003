"""Outbound HTTP: one webhook attempt. The only module that sends requests."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from lassod import __version__, signing
from lassod.config import DeliverySettings, SecuritySettings
from lassod.logs import logger
from lassod.netguard import AddressPolicy
from lassod.resolver import BlockedAddress, BlockedTargetError, GuardedResolver
from lassod.store.deliveries import AttemptJob

USER_AGENT = f"lassod/{__version__}"
# URLs whose target check passed or failed; the check parses the URL and any
# IP literal, which is a noticeable share of an attempt's cost.
TARGET_CACHE_SIZE = 4096
# How often the Sender checks for attempts past delivery.timeout_s. An
# attempt may run up to this much longer than the timeout.
DEADLINE_CHECK_S = 0.05


@dataclass(slots=True)
class AttemptResult:
    """The result of one request: a status code or an error kind."""

    succeeded: bool
    duration_ms: int
    status_code: int | None = None
    error_kind: str | None = None
    response_excerpt: str | None = None
    retry_after: str | None = None
    # The response came, but its body was still arriving at the deadline.
    hit_deadline: bool = False


def build_headers(job: AttemptJob, timestamp_s: int) -> dict[str, str]:
    """Return the request headers of one attempt, signed when a secret is set."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Lasso-Event": job.event_name,
        "X-Lasso-Event-Id": job.event_id,
        "X-Lasso-Delivery-Id": job.attempt_id,
        "webhook-id": job.event_id,
        "webhook-timestamp": str(timestamp_s),
    }
    if job.secret is not None:
        headers["X-Lasso-Signature"] = signing.lasso_signature(job.secret, job.body)
        signatures = [
            signing.standard_signature(job.secret, job.event_id, timestamp_s, job.body)
        ]
        if job.previous_secret is not None:
            headers["X-Lasso-Signature-Previous"] = signing.lasso_signature(
                job.previous_secret, job.body
            )
            signatures.append(
                signing.standard_signature(
                    job.previous_secret, job.event_id, timestamp_s, job.body
                )
            )
        headers["webhook-signature"] = " ".join(signatures)
    if job.auth_header_name is not None and job.auth_header_value is not None:
        headers[job.auth_header_name] = job.auth_header_value
    return headers


class _Deadline:
    """The deadline of one send, and the task to cancel if it still runs then."""

    __slots__ = ("when", "task", "cancelling", "finished", "expired", "hit")

    def __init__(self, when: float, task: asyncio.Task[object]) -> None:
        self.when = when
        self.task = task
        # How many cancellations were requested before this send began.
        self.cancelling = task.cancelling()
        self.finished = False
        self.expired = False
        # Whether timed_out() found that this deadline cut the send short.
        self.hit = False

    def timed_out(self) -> bool:
        """Return whether a CancelledError in the send is this deadline's own.

        The first call after the deadline passed takes its cancellation back,
        so a stop that also cancelled the task still stops it. Later calls
        return False.
        """
        if not self.expired:
            return False
        self.expired = False
        self.hit = self.task.uncancel() <= self.cancelling
        return self.hit


class _Deadlines:
    """Cancel sends that run past their deadline, with one timer for all.

    A timer per attempt (asyncio.timeout) cost about 3 µs of the event
    loop's time for each attempt. Sends started with one timeout are queued
    in the order they started, which is also the order of their deadlines,
    and the heads of the queues are checked every DEADLINE_CHECK_S.
    """

    def __init__(self) -> None:
        self._queues: dict[float, deque[_Deadline]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def start(self, timeout_s: float) -> _Deadline:
        """Start the deadline of the send that the current task runs."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "a send runs in a task"
        deadline = _Deadline(loop.time() + timeout_s, task)
        queue = self._queues.get(timeout_s)
        if queue is None:
            queue = self._queues[timeout_s] = deque()
        # Most sends finish in about the order they began, so finished ones at
        # the head can go.
        while queue and queue[0].finished:
            queue.popleft()
        queue.append(deadline)
        if self._timer is None:
            self._timer = loop.call_later(DEADLINE_CHECK_S, self._check, loop)
        return deadline

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for timeout_s, queue in list(self._queues.items()):
            while queue and (queue[0].finished or queue[0].when <= now):
                deadline = queue.popleft()
                if not deadline.finished:
                    deadline.expired = True
                    deadline.task.cancel()
            if not queue:
                del self._queues[timeout_s]
        self._timer = None
        if self._queues:
            self._timer = loop.call_later(DEADLINE_CHECK_S, self._check, loop)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Sender:
    """Send attempts through one shared client session.

    Every connection goes through a GuardedResolver, so it reaches only an
    address the [security] settings allow.
    """

    def __init__(
        self,
        settings: DeliverySettings,
        security: SecuritySettings,
        session: aiohttp.ClientSession,
        resolver: GuardedResolver,
    ) -> None:
        self._settings = settings
        self._security = security
        self._session = session
        self._resolver = resolver
        self._checked: dict[str, BlockedTargetError | None] = {}
        self._deadlines = _Deadlines()

    @classmethod
    def create(
        cls,
        settings: DeliverySettings,
        security: SecuritySettings,
        resolver: AbstractResolver | None = None,
    ) -> Sender:
        """Build the client session; `resolver` replaces system DNS (tests)."""
        guarded = GuardedResolver(AddressPolicy.from_settings(security), resolver)
        connector = aiohttp.TCPConnector(
            # Unlimited: the scheduler caps attempts in total and per host, and
            # a fixed pool size here would ignore limits raised by SIGHUP.
            limit=0,
            limit_per_host=0,
            resolver=guarded,
            ttl_dns_cache=10,
            enable_cleanup_closed=True,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
        )
        return cls(settings, security, session, guarded)

    def apply_settings(self, settings: DeliverySettings) -> None:
        """Use new delivery settings for attempts that start from now on."""
        self._settings = settings

    async def close(self) -> None:
        self._deadlines.close()
        await self._session.close()
        await self._resolver.close()

    async def send(self, job: AttemptJob) -> AttemptResult:
        """Send one attempt; never raises for network or receiver faults."""
        headers = build_headers(job, int(time.time()))
        started = time.monotonic()
        try:
            blocked = self._check_target(job.url)
        except (ValueError, UnicodeError):
            # Only URLs stored before the API checked the host get here.
            return _failure(started, "invalid_url")
        if blocked is not None:
            return _blocked(job, started, blocked)
        deadline = self._deadlines.start(self._settings.timeout_s)
        try:
            return await self._post(job, headers, started, deadline)
        except asyncio.CancelledError:
            if deadline.timed_out():
                return _failure(started, "timeout")
            raise
        finally:
            deadline.finished = True

    async def _post(
        self,
        job: AttemptJob,
        headers: dict[str, str],
        started: float,
        deadline: _Deadline,
    ) -> AttemptResult:
        """Send the request and read the response until the deadline."""
        try:
            response = await self._session.post(
                job.url, data=job.body, headers=headers, allow_redirects=False
            )
        except aiohttp.ClientConnectorDNSError as error:
            if isinstance(error.os_error, BlockedTargetError):
                return _blocked(job, started, error.os_error)
            return _failure(started, "dns_failure")
        except aiohttp.ClientConnectorCertificateError:
            return _failure(started, "tls_error")
        except aiohttp.ClientConnectorError as error:
            return _failure(started, _connect_error_kind(error))
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            return _failure(started, "connection_reset")
        except aiohttp.ClientResponseError:
            return _failure(started, "invalid_response")
        except (aiohttp.ClientError, ValueError):
            return _failure(started, "request_failed")

        excerpt = await self._read_excerpt(response, deadline)
        status = response.status
        return AttemptResult(
            succeeded=200 <= status < 300,
            duration_ms=_elapsed_ms(started),
            status_code=status,
            response_excerpt=excerpt,
            hit_deadline=deadline.hit,
            retry_after=response.headers.get("Retry-After"),
        )

    def _check_target(self, url: str) -> BlockedTargetError | None:
        """Return why the [security] settings forbid a URL, or None.

        Covers http under require_https, and blocked IP literals, which the
        connector never passes to the resolver. Host names are checked at
        each connection by the resolver instead.
        """
        try:
            return self._checked[url]
        except KeyError:
            pass
        parsed = URL(url)
        host = parsed.raw_host or ""
        blocked: BlockedTargetError | None = None
        if self._security.require_https and parsed.scheme != "https":
            blocked = BlockedTargetError(host, [BlockedAddress(host, "https_required")])
        else:
            try:
                self._resolver.check_literal(host)
            except BlockedTargetError as error:
                blocked = error
        if len(self._checked) >= TARGET_CACHE_SIZE:
            self._checked.clear()
        self._checked[url] = blocked
        return blocked

    async def _read_excerpt(
        self, response: aiohttp.ClientResponse, deadline: _Deadline
    ) -> str:
        """Read at most response_max_bytes before the deadline; keep an excerpt.

        The status already counts: a body cut off by the deadline only ends
        the excerpt, and drops the connection.
        """
        limit = self._settings.response_max_bytes
        keep = self._settings.response_excerpt_bytes
        content = response.content
        if content.is_eof():
            # The whole body came with the headers, as a 204's always does:
            # take it without a wait or a timer.
            try:
                body = content.read_nowait(limit)
            except (aiohttp.ClientError, ValueError):
                body = b""
            if content.at_eof():
                response.release()
            else:
                response.close()
            return body[:keep].decode("utf-8", errors="replace")
        chunks: list[bytes] = []
        size = 0
        complete = False
        try:
            while size < limit:
                chunk = await response.content.read(limit - size)
                if not chunk:
                    complete = True
                    break
                chunks.append(chunk)
                size += len(chunk)
        except (aiohttp.ClientError, ValueError):
            complete = False
        except asyncio.CancelledError:
            if not deadline.timed_out():
                raise
            complete = False
        finally:
            if complete:
                response.release()
            else:
                # An unread remainder makes the connection unusable: drop it.
                response.close()
        return b"".join(chunks)[:keep].decode("utf-8", errors="replace")


def _blocked(
    job: AttemptJob, started: float, error: BlockedTargetError
) -> AttemptResult:
    logger.warning(
        "delivery_target_blocked",
        delivery_id=job.delivery_id,
        endpoint_id=job.endpoint_id,
        host=error.host,
        addresses=[item.address for item in error.blocked],
        reasons=[item.reason for item in error.blocked],
    )
    return _failure(started, "blocked_address")


def _connect_error_kind(error: aiohttp.ClientConnectorError) -> str:
    if isinstance(error.os_error, ConnectionRefusedError):
        return "connection_refused"
    return "connect_failed"


def _failure(started: float, kind: str) -> AttemptResult:
    return AttemptResult(succeeded=False, duration_ms=_elapsed_ms(started), error_kind=kind)


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)

