"""How long one group of attempt records takes while the event loop thread is busy.

Run with `python -m bench.gil`. It seeds a temporary database. A second
thread then commits groups of attempt starts and outcomes (the work of
`record_and_begin`), as lassod's SQLite thread does. It does so twice: with
the main thread idle, then with the main thread running Python without pause,
as a saturated event loop does. The difference is the time the SQLite thread
waits to take the GIL back after each SQLite step releases it. It also
reports the bytes the process wrote per group (WAL pages and checkpoints),
from /proc/self/io where the system has it.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from bench import seed
from lassod.clock import now_ms
from lassod.store import database
from lassod.store.deliveries import AttemptJob, AttemptOutcome, record_and_begin

URL = "http://127.0.0.1:9/unused"
SECRET = "whsec_gil"


def succeeded(job: AttemptJob) -> AttemptOutcome:
    return AttemptOutcome(
        delivery_id=job.delivery_id,
        number=job.number,
        duration_ms=1,
        status_code=204,
        error_kind=None,
        response_excerpt="",
        attempt_outcome="succeeded",
        delivery_status="succeeded",
        next_due_ms=None,
        endpoint_id=job.endpoint_id,
        started_ms=job.started_ms,
    )


def commit_groups(path: str, group: int, durations: list[float]) -> None:
    """Start and finish every pending delivery, `group` of each per commit."""
    connection = sqlite3.connect(path, isolation_level=None)
    database._configure(connection)
    ids = [
        row[0]
        for row in connection.execute(
            "SELECT id FROM deliveries WHERE status = 'pending' ORDER BY id"
        )
    ]
    previous: list[AttemptJob] = []
    for start in range(0, len(ids) + group, group):
        began = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        outcomes = [succeeded(job) for job in previous]
        _, previous = record_and_begin(
            connection, outcomes, ids[start : start + group], now_ms()
        )
        connection.execute("COMMIT")
        durations.append(time.perf_counter() - began)
    connection.close()


def written_bytes() -> int | None:
    """Return the bytes this process has passed to write calls, if known."""
    try:
        with open("/proc/self/io") as counters:
            for line in counters:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def measure(path: str, group: int, busy: bool) -> list[float]:
    durations: list[float] = []
    worker = threading.Thread(target=commit_groups, args=(path, group, durations))
    worker.start()
    spins = 0
    while busy and worker.is_alive():
        spins += 1
    worker.join()
    return sorted(durations)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gil", description=__doc__)
    parser.add_argument("--deliveries", type=int, default=5_000)
    parser.add_argument("--group", type=int, default=100)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lassod-gil-") as folder:
        for busy in (False, True):
            path = str(Path(folder) / f"busy-{busy}.db")
            asyncio.run(
                seed.seed(path, [URL], SECRET, [now_ms()] * options.deliveries)
            )
            before = written_bytes()
            durations = measure(path, options.group, busy)
            after = written_bytes()
            median = durations[len(durations) // 2] * 1000
            slowest = durations[-1] * 1000
            state = "busy" if busy else "idle"
            written = ""
            if before is not None and after is not None:
                written = f", {(after - before) / len(durations) / 1024:.0f} KiB written per group"
            print(
                f"main thread {state}: {len(durations)} groups of {options.group},"
                f" median {median:.1f} ms, slowest {slowest:.1f} ms{written}"
            )


if __name__ == "__main__":
    main()
