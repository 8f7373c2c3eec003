"""Per-host admission: an attempt takes a scheduler slot only if its host has room."""

from __future__ import annotations

from collections import Counter, deque
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


# Every dispatch needs the host key of each delivery's URL, and parsing
# a URL costs more than a cache lookup. Most deliveries share a few URLs.
@lru_cache(maxsize=4096)
def host_key(url: str) -> str:
    """Return `scheme://host:port` of a URL, the unit per-host limits count.

    NOTE: names and ports are counted apart even when they reach one server,
    so a user with many names for one hanging server gets a cap per name.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


class HostAdmission:
    """Count attempts in flight per host; park due deliveries whose host is full.

    A connection cap per host in the HTTP client would not be enough, because
    an attempt waiting for a connection already occupies a scheduler slot, so
    deliveries to one hanging host could occupy every slot and starve all
    other hosts.
    Parked deliveries occupy no slot, and each finished attempt hands back
    parked deliveries of its host while it has room.

    A host whose last `limit` attempts all timed out gets a quarter of the
    limit (at least 1) until one of its attempts ends otherwise. Its
    attempts would hold their slots for the whole timeout and fail anyway,
    while other hosts could use those slots.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._active: Counter[str] = Counter()
        self._host_of: dict[str, str] = {}
        self._parked: dict[str, deque[tuple[int, str]]] = {}
        # Attempts in a row that timed out, per host.
        self._timeouts: Counter[str] = Counter()

    @property
    def parked(self) -> int:
        return sum(len(queue) for queue in self._parked.values())

    def admit(self, due: list[tuple[int, str]], hosts: dict[str, str]) -> list[str]:
        """Return the ids of due deliveries that may start now; park the rest.

        `hosts` maps delivery ids to host keys. An id without a host is no
        longer pending; it is admitted so that starting it discards it.
        """
        admitted = []
        for item in due:
            delivery_id = item[1]
            host = hosts.get(delivery_id)
            if host is not None and self._active[host] >= self.limit_of(host):
                self._parked.setdefault(host, deque()).append(item)
                continue
            if host is not None:
                self._active[host] += 1
                self._host_of[delivery_id] = host
            admitted.append(delivery_id)
        return admitted

    def counted_host(self, delivery_id: str) -> str | None:
        """Return the host a delivery's attempt is counted under, if any."""
        return self._host_of.get(delivery_id)

    def limit_of(self, host: str) -> int:
        """Return how many attempts may be in flight to a host now."""
        if self._timeouts.get(host, 0) >= self._limit:
            return max(1, self._limit // 4)
        return self._limit

    def release(
        self, delivery_id: str, timed_out: bool | None = None
    ) -> list[tuple[int, str]]:
        """Free the host slot of a delivery; return parked ones to schedule.

        `timed_out` is whether the attempt ran into its timeout, or None
        for a start that sent nothing. Parked deliveries come back while
        the host is under its limit.
        """
        host = self._host_of.pop(delivery_id, None)
        if host is None:
            return []
        self._active[host] -= 1
        if self._active[host] <= 0:
            del self._active[host]
        if timed_out:
            self._timeouts[host] += 1
        elif timed_out is False:
            self._timeouts.pop(host, None)
        queue = self._parked.get(host)
        released: list[tuple[int, str]] = []
        room = self.limit_of(host) - self._active.get(host, 0)
        while queue and len(released) < room:
            released.append(queue.popleft())
        if not queue:
            self._parked.pop(host, None)
        return released

    def unpark(self, hosts: set[str], delivery_ids: set[str]) -> list[tuple[int, str]]:
        """Return the deliveries of delivery_ids parked under hosts."""
        released = []
        for host in hosts:
            queue = self._parked.get(host)
            if not queue:
                continue
            staying = deque(item for item in queue if item[1] not in delivery_ids)
            released.extend(item for item in queue if item[1] in delivery_ids)
            if staying:
                self._parked[host] = staying
            else:
                del self._parked[host]
        return released

    def unpark_all(self) -> list[tuple[int, str]]:
        """Return every parked delivery, to be admitted anew."""
        released = [item for queue in self._parked.values() for item in queue]
        self._parked.clear()
        return released

    def set_limit(self, limit: int) -> list[tuple[int, str]]:
        """Change the per-host limit; return parked deliveries to schedule again.

        After a raise, every parked delivery goes back to the heap and is
        admitted or parked anew under the new limit.
        """
        raised = limit > self._limit
        self._limit = limit
        if not raised:
            return []
        return self.unpark_all()
