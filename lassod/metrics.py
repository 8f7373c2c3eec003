"""Prometheus metrics: one registry per daemon, rendered by GET /metrics.

Attempts and API requests are counted through label children cached in plain
dicts, because `labels()` builds a key and takes a lock on every call, and
lassod counts several metrics per attempt.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Attempt time spans fast local receivers up to delivery.timeout_s (at most
# 300 s); scheduler lag is normally milliseconds and grows under overload.
ATTEMPT_BUCKETS_S = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)
LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300)
DATABASE_BUCKETS_S = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class Metrics:
    """Every lassod_* metric of one daemon, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._add_delivery_metrics(self.registry)
        self._add_service_metrics(self.registry)
        self._delivery_children: dict[tuple[str, str], Counter] = {}
        self._attempt_children: dict[tuple[str, int], Counter] = {}
        self._api_children: dict[tuple[str, str, int], Counter] = {}
        self._database_children: dict[str, Histogram] = {}
        self._observe_attempt_s = self._attempt_seconds.observe
        self._observe_lag_s = self._lag_seconds.observe

    def _add_delivery_metrics(self, registry: CollectorRegistry) -> None:
        self._deliveries = Counter(
            "lassod_deliveries",
            "Deliveries that reached a final state, by event"
            " and outcome (succeeded or abandoned).",
            ("event", "outcome"),
            registry=registry,
        )
        self._attempts = Counter(
            "lassod_attempts",
            "Finished attempts by outcome (succeeded, failed,"
            " interrupted) and receiver status class (none without a response).",
            ("outcome", "status_class"),
            registry=registry,
        )
        self._attempt_seconds = Histogram(
            "lassod_attempt_duration_seconds",
            "Time from sending an attempt to its result.",
            buckets=ATTEMPT_BUCKETS_S,
            registry=registry,
        )
        self._lag_seconds = Histogram(
            "lassod_scheduler_lag_seconds",
            "Start time minus due time of each dispatched attempt.",
            buckets=LAG_BUCKETS_S,
            registry=registry,
        )

    def _add_service_metrics(self, registry: CollectorRegistry) -> None:
        self.in_flight = Gauge(
            "lassod_attempts_in_flight",
            "Attempts sent and not yet finished.",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "lassod_queue_depth",
            "Deliveries waiting, by state: pending (all"
            " pending in the database, read at scrape time), queued (due within"
            " the scheduler's window), in_flight.",
            ("state",),
            registry=registry,
        )
        self._api_requests = Counter(
            "lassod_api_requests",
            "API requests by route, method and status.",
            ("route", "method", "status"),
            registry=registry,
        )
        self._database_seconds = Histogram(
            "lassod_database_operation_seconds",
            "Time of each database read or transaction, by query function.",
            ("operation",),
            buckets=DATABASE_BUCKETS_S,
            registry=registry,
        )

    def watch_scheduler(
        self, queued: Callable[[], int], in_flight: Callable[[], int]
    ) -> None:
        """Read queue sizes from the scheduler at scrape time."""
        self.in_flight.set_function(in_flight)
        self.queue_depth.labels("queued").set_function(queued)
        self.queue_depth.labels("in_flight").set_function(in_flight)

    def set_pending(self, count: int) -> None:
        self.queue_depth.labels("pending").set(count)

    def attempt_dispatched(self, lag_ms: int) -> None:
        self._observe_lag_s(lag_ms / 1000 if lag_ms > 0 else 0.0)

    def attempt_finished(
        self,
        event_name: str,
        attempt_outcome: str,
        status_code: int | None,
        duration_ms: int | None,
        delivery_status: str,
    ) -> None:
        status_class = status_code // 100 if status_code else 0
        key = (attempt_outcome, status_class)
        child = self._attempt_children.get(key)
        if child is None:
            label = _STATUS_CLASSES.get(status_class, "none")
            child = self._attempts.labels(attempt_outcome, label)
            self._attempt_children[key] = child
        child.inc()
        if duration_ms is not None:
            self._observe_attempt_s(duration_ms / 1000)
        if delivery_status != "pending":
            self._delivery_finished(event_name, delivery_status)

    def _delivery_finished(self, event_name: str, delivery_status: str) -> None:
        key = (event_name, delivery_status)
        child = self._delivery_children.get(key)
        if child is None:
            child = self._deliveries.labels(event_name, delivery_status)
            self._delivery_children[key] = child
        child.inc()

    def api_request(self, route: str, method: str, status: int) -> None:
        if method not in _METHODS:
            # Clients choose the method, so only standard ones become labels.
            method = "other"
        key = (route, method, status)
        child = self._api_children.get(key)
        if child is None:
            child = self._api_requests.labels(route, method, str(status))
            self._api_children[key] = child
        child.inc()

    def database_operation(self, operation: str, seconds: float) -> None:
        child = self._database_children.get(operation)
        if child is None:
            child = self._database_seconds.labels(operation)
            self._database_children[operation] = child
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
