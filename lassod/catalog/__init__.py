"""The catalog: attribute dictionary, products and their webhook subscriptions."""

from __future__ import annotations

from lassod.clock import now_us


def write_time_us(previous_us: int | None = None) -> int:
    """Return the time of a write, later than the object's previous write.

    Two writes within one microsecond, or after the wall clock stepped back,
    still get strictly increasing times, so every write changes updated_at.
    Call it inside the write's transaction: writes are serialised there, so a
    write committed after a changes-feed read gets a time at or after that
    read's sync_timestamp unless the wall clock stepped back in between.
    """
    now = now_us()
    if previous_us is None:
        return now
    return max(now, previous_us + 1)
