"""Prometheus metrics: one registry per daemon, rendered by GET /metrics.

lassod counts several metrics per attempt. Those are kept in plain Python
numbers on the event loop's thread and turned into metric families at
scrape time (LoopCounter, LoopHistogram): prometheus_client takes a lock for
every increment and checks each bucket in turn. API requests are counted
through label children cached in a plain dict, because `labels()` builds a
key and takes a lock on every call.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

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


class LoopCounter:
    """A labelled counter updated only on the event loop's thread, without locks.

    It renders as `<name>_total` like prometheus_client's Counter, without
    the `<name>_created` series.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        label_names: tuple[str, ...],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._label_names = label_names
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def inc(self, labels: tuple[str, ...]) -> None:
        self.values[labels] = self.values.get(labels, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            self._name, self._documentation, labels=self._label_names
        )
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        yield family


class LoopHistogram:
    """A histogram updated only on the event loop's thread, without locks.

    It renders like prometheus_client's Histogram, without the
    `<name>_created` series.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: tuple[float, ...],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = (*(float(bound) for bound in buckets), math.inf)
        # One count per bucket, not cumulative. The last counts values above
        # every bound.
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        # A value equal to a bound counts in that bound's bucket (le).
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def collect(self) -> Iterator[Metric]:
        cumulative = 0
        buckets = []
        for bound, count in zip(self._bounds, self._counts):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=self._sum
        )


class Metrics:
    """Every lassod_* metric of one daemon, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._add_delivery_metrics(self.registry)
        self._add_service_metrics(self.registry)
        self._api_children: dict[tuple[str, str, int], Counter] = {}
        self._database_children: dict[str, Histogram] = {}
        self._observe_attempt_s = self._attempt_seconds.observe
        self._observe_lag_s = self._lag_seconds.observe

    def _add_delivery_metrics(self, registry: CollectorRegistry) -> None:
        self._deliveries = LoopCounter(
            "lassod_deliveries",
            "Deliveries that reached a final state, by event"
            " and outcome (succeeded or abandoned).",
            ("event", "outcome"),
            registry,
        )
        self._attempts = LoopCounter(
            "lassod_attempts",
            "Finished attempts by outcome (succeeded, failed,"
            " interrupted) and receiver status class (none without a response).",
            ("outcome", "status_class"),
            registry,
        )
        self._attempt_seconds = LoopHistogram(
            "lassod_attempt_duration_seconds",
            "Time from sending an attempt to its result.",
            ATTEMPT_BUCKETS_S,
            registry,
        )
        self._lag_seconds = LoopHistogram(
            "lassod_scheduler_lag_seconds",
            "Start time minus due time of each dispatched attempt.",
            LAG_BUCKETS_S,
            registry,
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
        self,
        queued: Callable[[], int],
        in_flight: Callable[[], int],
        parked: Callable[[], int],
    ) -> None:
        """Read queue sizes from the scheduler at scrape time."""
        self.in_flight.set_function(in_flight)
        self.queue_depth.labels("queued").set_function(queued)
        self.queue_depth.labels("in_flight").set_function(in_flight)
        self.queue_depth.labels("parked").set_function(parked)

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
        label = _STATUS_CLASSES.get(status_class, "none")
        self._attempts.inc((attempt_outcome, label))
        if duration_ms is not None:
            self._observe_attempt_s(duration_ms / 1000)
        if delivery_status != "pending":
            self._deliveries.inc((event_name, delivery_status))

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
