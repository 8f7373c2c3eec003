"""The scheduler: a heap of due deliveries, dispatched under a concurrency limit."""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from typing import Callable, Iterable

from lassod import outcomes
from lassod.admission import SLOW_ATTEMPT_S, HostAdmission, host_key
from lassod.clock import now_ms
from lassod.config import DeliverySettings
from lassod.delivery import AttemptResult, Sender
from lassod.logs import log_event, logger
from lassod.metrics import Metrics
from lassod.recorder import OutcomeRecorder
from lassod.store import Database
from lassod.store import deliveries as queries
from lassod.store.deliveries import AttemptJob, AttemptOutcome, QueuedDelivery
from lassod.store.endpoints import Deactivation

# The heap holds only deliveries due within this window; the rest wait in
# SQLite and are read by index as the window moves.
HORIZON_MS = 60_000
REFILL_LIMIT = 5_000
# Sorts after every delivery id, so (due, _LAST_ID) covers all ids at `due`.
_LAST_ID = "~"
# URL changes within this window are handled together (endpoint_moved).
MOVE_BATCH_S = 0.1
# How often the loop checks SQLite's data_version for a commit by another
# process, such as `lassod deliveries redeliver`. A rescan starts this far
# before the previous check, because a writer takes its time stamp before it
# waits for the write lock (busy_timeout is 5 s).
EXTERNAL_CHECK_INTERVAL_S = 0.5
EXTERNAL_SLACK_MS = 10_000


class Scheduler:
    """Keep due deliveries in a heap and run their attempts concurrently.

    Invariant: every pending delivery with (due, id) at or before `_cursor`
    is in the heap, parked by `_admission`, having its attempt start
    committed, or in flight. Deliveries after it are read from the index when
    the window moves; new ones due within the window are pushed by `notify`.
    Deliveries that another process inserts inside the window are found by
    `_check_external_writes`, which rescans when SQLite's data_version shows
    a commit from another connection.
    """

    def __init__(
        self,
        database: Database,
        sender: Sender,
        settings: DeliverySettings,
        metrics: Metrics | None = None,
    ) -> None:
        self._database = database
        self._sender = sender
        self._settings = settings
        self._heap: list[tuple[int, str]] = []
        # Every delivery the scheduler holds, with its endpoint URL if known.
        self._known: dict[str, str | None] = {}
        # The company of each delivery in _known, where the scheduler read it.
        self._companies: dict[str, str] = {}
        self._cursor: tuple[int, str] = (0, "")
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._admission = HostAdmission(settings.per_host_limit, settings.unproven_limit)
        self._beginning: set[asyncio.Task[None]] = set()
        self._starting = 0
        # Set by stop once it no longer waits for attempt starts. A start
        # committed after that is taken back instead of sent.
        self._starts_closed = False
        self._recorder = OutcomeRecorder(database, self._on_recorded)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_tick = time.monotonic()
        self._data_version = 0
        # URLs that endpoints left for another host, handled MOVE_BATCH_S later.
        self._moved_urls: set[str] = set()
        self._moved_handle: asyncio.TimerHandle | None = None
        self._external_checked_ms = 0
        self._external_check_due = 0.0
        # Called on every pass of the loop, such as to ping systemd's watchdog.
        # An idle loop still passes at least every max_idle_s.
        self.on_tick: Callable[[], None] | None = None
        self.max_idle_s = 1.0
        self._metrics = Metrics() if metrics is None else metrics
        self._metrics.watch_scheduler(
            lambda: len(self._heap),
            lambda: len(self._in_flight),
            lambda: self._admission.parked,
        )

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def queued(self) -> int:
        return len(self._heap)

    async def start(self) -> None:
        """Settle attempts cut off by a crash, load the queue, start the loop."""
        await self._recover_interrupted()
        self._data_version = await self._database.read(queries.data_version)
        self._external_checked_ms = now_ms()
        await self._refill(now_ms())
        self._task = asyncio.create_task(self._run(), name="lassod-scheduler")

    def notify(self, queued: Iterable[QueuedDelivery]) -> None:
        """Add deliveries that were just committed with a due time."""
        window_end = now_ms() + HORIZON_MS
        pushed = False
        for item in queued:
            if item.delivery_id in self._known or item.due_ms > window_end:
                continue
            self._push(item.due_ms, item.delivery_id, item.url, item.company_id)
            pushed = True
        if pushed:
            self._wake.set()

    async def stop(self, grace_s: float) -> None:
        """Stop dispatching, let attempts finish within grace_s, record all.

        Recording the outcomes gets up to grace_s more, which only a locked
        or failing database uses up. What is not recorded by then is found
        at the next start as interrupted attempts.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        self._stopping = True
        if self._moved_handle is not None:
            self._moved_handle.cancel()
            self._moved_handle = None
        self._wake.set()
        if self._task is not None:
            await self._task
        # Attempts whose start is being committed are sent too, so none is
        # recorded as begun without a request. A start still not committed
        # at the deadline is taken back once it is, without a request.
        if self._beginning:
            remaining_s = max(deadline - loop.time(), 0)
            await asyncio.wait(set(self._beginning), timeout=remaining_s)
        self._starts_closed = True
        await _finish_or_cancel(self._in_flight, deadline - loop.time())
        await self._recorder.stop(grace_s)

    def apply_settings(self, settings: DeliverySettings) -> None:
        """Use new delivery settings from the next pass of the loop on.

        Attempts in flight finish under the settings they started with; a
        lower max_concurrency only holds back new dispatches.
        """
        self._settings = settings
        limits = (settings.per_host_limit, settings.unproven_limit)
        for item in self._admission.set_limit(*limits):
            # Still in _known: parked deliveries never left the scheduler.
            heapq.heappush(self._heap, item)
        self._wake.set()

    def endpoint_moved(self, old_url: str | None, new_url: str) -> None:
        """Read URLs again for deliveries cached with an endpoint's old URL.

        Deliveries are admitted under the URL the scheduler read when they
        were queued. When an endpoint moves to another host, those cached
        with its old URL read theirs again before they are next admitted.
        Those parked under the old host go back to the heap, so that none
        waits behind the host its endpoint left. Changes within
        MOVE_BATCH_S share one pass over the cache.
        """
        if old_url is None or host_key(old_url) == host_key(new_url):
            return
        self._moved_urls.add(old_url)
        if self._moved_handle is None:
            loop = asyncio.get_running_loop()
            self._moved_handle = loop.call_later(MOVE_BATCH_S, self._forget_moved)

    def _forget_moved(self) -> None:
        self._moved_handle = None
        moved, self._moved_urls = self._moved_urls, set()
        stale = set()
        for delivery_id, url in self._known.items():
            if url in moved:
                self._known[delivery_id] = None
                stale.add(delivery_id)
        hosts = {host_key(url) for url in moved}
        for item in self._admission.unpark(hosts, stale):
            heapq.heappush(self._heap, item)
        self._wake.set()

    def _push(
        self, due_ms: int, delivery_id: str, url: str | None, company_id: str | None
    ) -> None:
        heapq.heappush(self._heap, (due_ms, delivery_id))
        self._known[delivery_id] = url
        if company_id is not None:
            self._companies[delivery_id] = company_id

    def _forget(self, delivery_id: str) -> str | None:
        """Drop a delivery from the caches; return its cached URL."""
        self._companies.pop(delivery_id, None)
        return self._known.pop(delivery_id, None)

    async def _recover_interrupted(self) -> None:
        unfinished = await self._database.read(queries.unfinished_attempts)
        if not unfinished:
            return
        now = now_ms()
        settled = [
            outcomes.interrupted(attempt, now, self._settings) for attempt in unfinished
        ]
        await self._database.transaction(queries.record_outcomes, settled, now)
        for attempt, outcome in zip(unfinished, settled):
            self._metrics.attempt_finished(
                attempt.event_name,
                outcome.attempt_outcome,
                None,
                None,
                outcome.delivery_status,
            )
        logger.warning("interrupted_attempts_recovered", count=len(settled))

    async def _refill(self, now: int) -> None:
        until = now + HORIZON_MS
        rows = await self._database.read(
            queries.pending_due_after, self._cursor, until, REFILL_LIMIT
        )
        for row in rows:
            if row.delivery_id not in self._known:
                self._push(row.due_ms, row.delivery_id, row.url, row.company_id)
        if len(rows) < REFILL_LIMIT:
            self._cursor = max(self._cursor, (until, _LAST_ID))
        else:
            self._cursor = (rows[-1].due_ms, rows[-1].delivery_id)

    async def _check_external_writes(self, now: int) -> None:
        """Push deliveries that other processes inserted inside the window."""
        version = await self._database.read(queries.data_version)
        since_ms = self._external_checked_ms - EXTERNAL_SLACK_MS
        self._external_checked_ms = now
        if version == self._data_version:
            return
        self._data_version = version
        after = (since_ms - 1, _LAST_ID)
        while True:
            rows = await self._database.read(
                queries.pending_due_after, after, self._cursor[0], REFILL_LIMIT
            )
            new = [row for row in rows if row.delivery_id not in self._known]
            for row in new:
                self._push(row.due_ms, row.delivery_id, row.url, row.company_id)
            if new:
                logger.info("external_deliveries_found", count=len(new))
            if len(rows) < REFILL_LIMIT:
                return
            after = (rows[-1].due_ms, rows[-1].delivery_id)

    def _needs_refill(self, now: int) -> bool:
        if self._cursor[1] == _LAST_ID:
            return self._cursor[0] < now + HORIZON_MS // 2
        # The last refill hit its limit: read more once the heap runs low.
        return len(self._heap) < REFILL_LIMIT // 2

    async def _run(self) -> None:
        while not self._stopping:
            self.last_tick = time.monotonic()
            if self.on_tick is not None:
                self.on_tick()
            now = now_ms()
            if self._needs_refill(now):
                await self._refill(now)
            if time.monotonic() >= self._external_check_due:
                self._external_check_due = time.monotonic() + EXTERNAL_CHECK_INTERVAL_S
                await self._check_external_writes(now)
            free = self._free_slots()
            due = self._take_due(now, free)
            if due:
                self._begin(due)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._sleep_s(now, free))
            except TimeoutError:
                pass

    def _free_slots(self) -> int:
        """Return the number of slots with no attempt in flight or being started."""
        occupied = len(self._in_flight) + self._starting
        return self._settings.max_concurrency - occupied

    def _take_due(self, now: int, free: int) -> list[tuple[int, str]]:
        due = []
        while self._heap and free > len(due) and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap))
        return due

    def _sleep_s(self, now: int, free: int) -> float:
        """Return how long the loop may sleep before something comes due."""
        # Capped so the loop ticks often enough for health checks and pings.
        wake_ms = now + round(self.max_idle_s * 1000)
        if self._cursor[1] == _LAST_ID:
            wake_ms = min(wake_ms, self._cursor[0] - HORIZON_MS // 2)
        # Otherwise the last refill hit its limit and the next one waits for
        # the heap to run low, which only a wake-up can bring about.
        if self._heap and free > 0:
            wake_ms = min(wake_ms, self._heap[0][0])
        return max(wake_ms - now, 0) / 1000

    def _begin(self, due: list[tuple[int, str]]) -> None:
        """Admit and start due deliveries in the background; the loop goes on."""
        self._starting += len(due)
        task = asyncio.create_task(self._commit_starts(due), name="lassod-begin-attempts")
        self._beginning.add(task)
        task.add_done_callback(self._beginning.discard)

    async def _commit_starts(self, due: list[tuple[int, str]]) -> None:
        delivery_ids: list[str] = []
        try:
            hosts, companies = await self._targets([item[1] for item in due])
            delivery_ids = self._admission.admit(due, hosts, companies)
            jobs = await self._recorder.begin(delivery_ids) if delivery_ids else []
        except BaseException:
            for delivery_id in delivery_ids:
                self._release_host(delivery_id)
            raise
        finally:
            self._starting -= len(due)
            # Parked deliveries hand their slots back to the loop.
            self._wake.set()
        started = {job.delivery_id for job in jobs}
        for delivery_id in delivery_ids:
            if delivery_id not in started:
                self._forget(delivery_id)
                self._release_host(delivery_id)
        if self._starts_closed:
            self._take_back(jobs)
            return
        sendable = self._recount_changed_hosts(jobs, due)
        self._observe_lag(due, sendable)
        for job in sendable:
            self._launch(job)
        if len(jobs) < len(delivery_ids):
            self._wake.set()

    def _observe_lag(self, due: list[tuple[int, str]], jobs: list[AttemptJob]) -> None:
        """Count the lag of attempts about to be sent, once each.

        Deliveries parked or taken back come back later and count then.
        """
        if not jobs:
            return
        due_ms = dict((item[1], item[0]) for item in due)
        for job in jobs:
            self._metrics.attempt_dispatched(job.started_ms - due_ms[job.delivery_id])

    def _recount_changed_hosts(
        self, jobs: list[AttemptJob], due: list[tuple[int, str]]
    ) -> list[AttemptJob]:
        """Count each job under the host of its current URL; return those to send.

        A delivery is admitted under the URL the scheduler read when it was
        queued, but its job carries the endpoint's URL at the start. When an
        endpoint moved to another host in between, the job is counted there
        instead. If that host is full, its start is taken back and the
        delivery waits, parked under the new host.
        """
        sendable = []
        parked = []
        for job in jobs:
            host = host_key(job.url)
            counted = self._admission.counted_host(job.delivery_id)
            if counted is None or counted == host:
                sendable.append(job)
                continue
            self._release_host(job.delivery_id)
            self._known[job.delivery_id] = job.url
            due_ms = next(item[0] for item in due if item[1] == job.delivery_id)
            hosts = {job.delivery_id: host}
            companies = {job.delivery_id: job.company_id}
            if self._admission.admit([(due_ms, job.delivery_id)], hosts, companies):
                sendable.append(job)
            else:
                parked.append(job)
        if parked:
            self._recorder.take_back(parked)
            logger.info("attempt_starts_parked_for_new_host", count=len(parked))
        return sendable

    def _take_back(self, jobs: list[AttemptJob]) -> None:
        """Undo the starts of attempts that stop will not send."""
        for job in jobs:
            self._forget(job.delivery_id)
            self._release_host(job.delivery_id)
        if jobs:
            self._recorder.take_back(jobs)
            logger.info("attempt_starts_taken_back", count=len(jobs))

    async def _targets(
        self, delivery_ids: list[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Return the host key and the company of each delivery, reading unknown ones.

        The URL read when the delivery was queued may be out of date, so
        _recount_changed_hosts checks each job's URL once its start commits.
        """
        urls = {item: self._known.get(item) for item in delivery_ids}
        companies = {
            item: self._companies[item] for item in delivery_ids if item in self._companies
        }
        unknown = [
            item for item in delivery_ids if urls[item] is None or item not in companies
        ]
        if unknown:
            read = await self._database.read(queries.delivery_targets, unknown)
            for delivery_id, (url, company_id) in read.items():
                urls[delivery_id] = url
                companies[delivery_id] = company_id
                # Cached, so that a delivery parked under this URL's host can
                # be found if its endpoint moves (endpoint_moved).
                if delivery_id in self._known:
                    self._known[delivery_id] = url
                    self._companies[delivery_id] = company_id
        hosts = {item: host_key(url) for item, url in urls.items() if url is not None}
        return hosts, companies

    def _launch(self, job: AttemptJob) -> None:
        # The URL the attempt uses is current; a retry is admitted under it.
        self._known[job.delivery_id] = job.url
        task = asyncio.create_task(self._attempt(job), name=f"lassod-attempt-{job.delivery_id}")
        self._in_flight.add(task)
        task.add_done_callback(self._attempt_done)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _attempt(self, job: AttemptJob) -> None:
        result: AttemptResult | None = None
        try:
            result = await self._sender.send(job)
        except asyncio.CancelledError:
            # Stopped after the grace period: counts as a failure without a response.
            result = AttemptResult(succeeded=False, duration_ms=0, error_kind="interrupted")
        except Exception:
            logger.exception("delivery_attempt_crashed", delivery_id=job.delivery_id)
            result = AttemptResult(succeeded=False, duration_ms=0, error_kind="internal_error")
        finally:
            self._release_host(job.delivery_id, _timed_out(result), _fast(result))
        outcome = outcomes.decide(
            job, result, now_ms(), self._settings, random.random()
        )
        self._recorder.add(outcome)
        self._metrics.attempt_finished(
            job.event_name,
            outcome.attempt_outcome,
            result.status_code,
            result.duration_ms,
            outcome.delivery_status,
        )
        _log_attempt(job, result, outcome)

    def _release_host(
        self,
        delivery_id: str,
        timed_out: bool | None = None,
        fast: bool | None = None,
    ) -> None:
        parked = self._admission.release(delivery_id, timed_out, fast)
        for item in parked:
            # Still in _known: it never left the scheduler's hands.
            heapq.heappush(self._heap, item)
        if parked:
            self._wake.set()

    def _on_recorded(
        self, batch: list[AttemptOutcome], deactivated: list[Deactivation]
    ) -> None:
        for item in deactivated:
            logger.warning(
                "subscription_deactivated",
                subscription_id=item.endpoint_id,
                reason=item.reason,
                abandoned_deliveries=item.abandoned,
            )
        retried = []
        for outcome in batch:
            company_id = self._companies.get(outcome.delivery_id)
            url = self._forget(outcome.delivery_id)
            if outcome.delivery_status == "pending" and outcome.next_due_ms is not None:
                retried.append(
                    QueuedDelivery(outcome.next_due_ms, outcome.delivery_id, url, company_id)
                )
        self.notify(retried)


async def _finish_or_cancel(tasks: set[asyncio.Task[None]], timeout_s: float) -> None:
    """Wait up to timeout_s for the tasks, then cancel the rest and wait for them."""
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=max(timeout_s, 0))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


def _timed_out(result: AttemptResult | None) -> bool | None:
    """Return whether an attempt ran into its timeout; None if it was cut short.

    A response whose body was still arriving at the deadline counts as timed
    out here, although the attempt succeeds with its status.
    """
    if result is None or result.error_kind in ("interrupted", "internal_error"):
        return None
    return result.error_kind == "timeout" or result.hit_deadline


def _fast(result: AttemptResult | None) -> bool | None:
    """Return whether an attempt ended within SLOW_ATTEMPT_S without timing out."""
    timed_out = _timed_out(result)
    if result is None or timed_out is None:
        return None
    return not timed_out and result.duration_ms < SLOW_ATTEMPT_S * 1000


def _log_attempt(job: AttemptJob, result: AttemptResult, outcome: AttemptOutcome) -> None:
    fields = {
        "delivery_id": job.delivery_id,
        "event_id": job.event_id,
        "event_name": job.event_name,
        "endpoint_id": job.endpoint_id,
        "attempt": job.number,
        "attempt_id": job.attempt_id,
        "status": result.status_code,
        "error_kind": result.error_kind,
        "duration_ms": result.duration_ms,
    }
    if outcome.attempt_outcome == "succeeded":
        log_event("info", "delivery_attempt_succeeded", fields)
    elif outcome.delivery_status == "abandoned":
        fields["reason"] = outcome.reason
        log_event("error", "delivery_abandoned", fields)
    else:
        fields["next_due_ms"] = outcome.next_due_ms
        log_event("warning", "delivery_attempt_failed", fields)
