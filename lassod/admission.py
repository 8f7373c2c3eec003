"""Per-host admission: an attempt takes a scheduler slot only if its host has room."""

from __future__ import annotations

from collections import Counter, deque
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# An attempt that ends sooner than this, without timing out, makes its host
# proven (see HostAdmission). Receivers usually respond within a few hundred
# milliseconds.
SLOW_ATTEMPT_S = 1.0


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

    Attempts to hosts that are not proven count against their company's
    `company_limit`. A host is proven while its last finished attempt ended
    within SLOW_ATTEMPT_S without timing out. So one company cannot spread
    hanging receivers over many hosts and hold every slot, while a company
    with fast receivers can still use every slot. NOTE: this is no fair
    share between companies. One fast response proves a host again, and
    up to `limit` attempts to it then start uncounted, so receivers that
    respond fast after each timeout and hang in between can still hold
    every slot.
    """

    def __init__(self, limit: int, company_limit: int | None = None) -> None:
        self._limit = limit
        self._active: Counter[str] = Counter()
        self._host_of: dict[str, str] = {}
        self._parked: dict[str, deque[tuple[int, str]]] = {}
        # Attempts in a row that timed out, per host.
        self._timeouts: Counter[str] = Counter()
        self._company_limit = company_limit
        self._proven: set[str] = set()
        # Attempts in flight to hosts not proven when they started, per company.
        self._unproven: Counter[str] = Counter()
        self._company_of: dict[str, str] = {}
        self._company_parked: dict[str, deque[tuple[int, str]]] = {}

    @property
    def parked(self) -> int:
        queues = [*self._parked.values(), *self._company_parked.values()]
        return sum(len(queue) for queue in queues)

    def admit(
        self,
        due: list[tuple[int, str]],
        hosts: dict[str, str],
        companies: dict[str, str] | None = None,
    ) -> list[str]:
        """Return the ids of due deliveries that may start now; park the rest.

        `hosts` maps delivery ids to host keys, and `companies` to company
        ids. An id without a host is no longer pending; it is admitted so
        that starting it discards it.
        """
        admitted = []
        for item in due:
            delivery_id = item[1]
            host = hosts.get(delivery_id)
            if host is not None and self._active[host] >= self.limit_of(host):
                self._parked.setdefault(host, deque()).append(item)
                continue
            # The company whose limit this attempt counts against, if any.
            company = None if companies is None else companies.get(delivery_id)
            if host in self._proven:
                company = None
            if company is not None and self._company_room(company) <= 0:
                self._company_parked.setdefault(company, deque()).append(item)
                continue
            if host is not None:
                self._active[host] += 1
                self._host_of[delivery_id] = host
            if company is not None:
                self._unproven[company] += 1
                self._company_of[delivery_id] = company
            admitted.append(delivery_id)
        return admitted

    def _company_room(self, company: str) -> int:
        if self._company_limit is None:
            return 1
        return self._company_limit - self._unproven[company]

    def counted_host(self, delivery_id: str) -> str | None:
        """Return the host a delivery's attempt is counted under, if any."""
        return self._host_of.get(delivery_id)

    def limit_of(self, host: str) -> int:
        """Return how many attempts may be in flight to a host now."""
        if self._timeouts.get(host, 0) >= self._limit:
            return max(1, self._limit // 4)
        return self._limit

    def release(
        self,
        delivery_id: str,
        timed_out: bool | None = None,
        fast: bool | None = None,
    ) -> list[tuple[int, str]]:
        """Free the host slot of a delivery; return parked ones to schedule.

        `timed_out` is whether the attempt ran into its timeout, and `fast`
        whether it ended within SLOW_ATTEMPT_S without timing out. Both are
        None for a start that sent nothing. Parked deliveries come back
        while their host, or their company, has room.
        """
        company = self._company_of.get(delivery_id)
        released = self._release_company(delivery_id)
        host = self._host_of.pop(delivery_id, None)
        if host is None:
            return released
        self._active[host] -= 1
        if self._active[host] <= 0:
            del self._active[host]
        if timed_out:
            self._timeouts[host] += 1
        elif timed_out is False:
            self._timeouts.pop(host, None)
        if fast and host not in self._proven:
            self._proven.add(host)
            if company is not None:
                # Its company's parked deliveries may be for this host, which
                # no longer counts against the company, so admit them anew.
                released.extend(self._company_parked.pop(company, ()))
        elif fast is False:
            self._proven.discard(host)
        queue = self._parked.get(host)
        room = self.limit_of(host) - self._active.get(host, 0)
        while queue and room > 0:
            released.append(queue.popleft())
            room -= 1
        if not queue:
            self._parked.pop(host, None)
        return released

    def _release_company(self, delivery_id: str) -> list[tuple[int, str]]:
        """Stop counting an attempt for its company; return parked ones with room."""
        company = self._company_of.pop(delivery_id, None)
        if company is None:
            return []
        self._unproven[company] -= 1
        if self._unproven[company] <= 0:
            del self._unproven[company]
        queue = self._company_parked.get(company)
        released: list[tuple[int, str]] = []
        room = self._company_room(company)
        while queue and len(released) < room:
            released.append(queue.popleft())
        if queue is not None and not queue:
            del self._company_parked[company]
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
        queues = [*self._parked.values(), *self._company_parked.values()]
        released = [item for queue in queues for item in queue]
        self._parked.clear()
        self._company_parked.clear()
        return released

    def set_limit(
        self, limit: int, company_limit: int | None = None
    ) -> list[tuple[int, str]]:
        """Change the limits; return parked deliveries to schedule again.

        After a raise of either, every parked delivery goes back to the heap
        and is admitted or parked anew under the new limits.
        """
        raised = limit > self._limit or _above(company_limit, self._company_limit)
        self._limit = limit
        self._company_limit = company_limit
        if not raised:
            return []
        return self.unpark_all()


def _above(new: int | None, old: int | None) -> bool:
    """Return whether a limit rose; None means no limit."""
    if new is None:
        return old is not None
    return old is not None and new > old
