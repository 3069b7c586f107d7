"""The sliding-window algorithm both backends share, and why its bound holds.

Each limit's period `P` is split into sub-buckets of width `w` (by default `P / 100`, but never
under 1 ms). Time is integer microseconds; bucket `b(t) = t // w`. A limit keeps one counter per
bucket that can still matter, plus their running total, so its state is at most `span + 2`
numbers however many requests it sees (a Redis hash of about a hundred fields: a listpack).

Decision at time `t` with cost `c` and capacity `C`: first drop the buckets older than
`b(t) - span + 1`, where `span = ceil(P / w) + 1`; then admit when `total + c <= C`, and add
`c` to bucket `b(t)`. The counted buckets reach back at least `(span - 1) * w >= P` before
`t` (the oldest one only partly overlaps the last period and is counted in full: conservative).

Bound (no window of length P ever holds more than C). Take any half-open window `(s - P, s]`
and the last admission in it, at time `t`. Every other admission `a` in the window has
`t - P <= s - P < a <= t`, so `b(a) >= b(t - P) >= b(t) - span + 1`: its bucket was still
counted when `t` was decided. Decisions are serialised (one Lua script at a time in Redis, one
event loop in process) and read one clock (Redis `TIME`, or the process's monotonic clock), so
`t` was admitted only because everything before it in the window plus its own cost fit in C.

Utilisation. What the rule gives up is only the uncounted part of the oldest bucket, at most
one bucket of `span` ones: under steady demand at least `1 - 1/span` (>= 99% for 100 buckets)
of the limit is used; an admission refused now is admitted as soon as the bucket holding the
capacity it needs leaves the span, which is exactly the `retry_after` reported. A fixed-window
counter would admit 2C across a window edge; a log of admissions would be exact but keep one
entry per request (2,000,000 a day); this keeps ~100 counters per limit for a 1% loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BUCKETS_PER_PERIOD = 100
MIN_BUCKET_US = 1_000
US = 1_000_000


@dataclass(frozen=True)
class Geometry:
    """Bucket width (µs) and how many buckets a decision counts."""

    width_us: int
    span: int

    @staticmethod
    def for_period(period_s: float, buckets: int = BUCKETS_PER_PERIOD) -> Geometry:
        """Buckets of `period / buckets` (at least 1 ms) that together cover at least `period`."""
        period_us = max(1, round(period_s * US))
        width = max(MIN_BUCKET_US, period_us // buckets)
        return Geometry(width_us=width, span=math.ceil(period_us / width) + 1)

    def retry_after_us(self, now_us: int, oldest_first: list[tuple[int, int]], need: int) -> int:
        """Microseconds until enough buckets leave the span to free `need` units.

        `oldest_first` lists the counted (bucket index, count) pairs in ascending order.
        """
        freed = 0
        for index, count in oldest_first:
            freed += count
            if freed >= need:
                return max(0, (index + self.span) * self.width_us - now_us)
        # Only reached when the caller asks for more than is counted; the newest bucket bounds it.
        last = oldest_first[-1][0] if oldest_first else now_us // self.width_us
        return max(0, (last + self.span) * self.width_us - now_us)


@dataclass
class SlidingWindow:
    """One limit's counters in process memory: the same rule the Lua script applies in Redis."""

    geometry: Geometry
    buckets: dict[int, int] = field(default_factory=dict)
    total: int = 0

    def _evict(self, now_us: int) -> None:
        oldest = now_us // self.geometry.width_us - self.geometry.span + 1
        # Buckets are created in ascending order (the clock is monotonic), so dict order is age order.
        while self.buckets:
            index = next(iter(self.buckets))
            if index >= oldest:
                break
            self.total -= self.buckets.pop(index)

    def used(self, now_us: int) -> int:
        """Units counted against the capacity at `now_us`."""
        self._evict(now_us)
        return self.total

    def retry_after_us(self, now_us: int, cost: int, capacity: int) -> int:
        """Microseconds until `cost` more units fit (call only when they do not fit now)."""
        self._evict(now_us)
        need = self.total + cost - capacity
        return self.geometry.retry_after_us(now_us, list(self.buckets.items()), need)

    def add(self, now_us: int, cost: int) -> None:
        """Count `cost` units in the current bucket."""
        index = now_us // self.geometry.width_us
        self.buckets[index] = self.buckets.get(index, 0) + cost
        self.total += cost
