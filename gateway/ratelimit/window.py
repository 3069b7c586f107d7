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

Degraded mode (Redis unreachable; fallback_limiter.py). The bound above needs every decision to
see every admission; a replica cut off from Redis cannot, so the fleet can only be held close to
C, not to C exactly. Notation, per limit: C per period P, N replicas, degraded share s,
L = max(1, floor(s * C)) the local capacity of one replica. The rules:

  (a) Seed. Every Redis decision reports, per limit, what is left (`remaining`; a refusal means
      less than its cost). When replica r switches to local decisions, each limit it has such a
      report for, R_r at time t_r, starts with budget B_r = min(L, floor(s * R_r)): r admits at
      most B_r locally until t_r + P (plus one bucket), then at most L in any window again.
      A limit without a report since r last recovered keeps its local window (L per window,
      minus what r admitted locally in it). With s <= 1/N and fresh reports (R_r = R, what was
      left when Redis went), the fleet spends at most N * floor(s * R) <= R of it.
  (b) Write back. Every local admission is journalled; on recovery, before r decides on Redis
      again, the journal is debited into Redis without a check (`acquire.lua` debit mode), each
      amount in the bucket of the time it was admitted (as an age, so the two clocks need not
      agree; at the end of its local bucket: counted a little longer, never shorter).

The bound. Take any window W of length P in which Redis decided, its last decision there at t.
That decision counted every admission in W Redis knew of at t (its own, and local ones already
written back, at their own times), so

    fleet(W) <= C + sum over replicas r of U_r(W),

U_r(W) being r's local admissions in W that were not yet written back at t. In a window where
Redis decided nothing, fleet(W) = sum of local admissions <= N * L. And U_r(W) <= B_r when W ends
before t_r + P, <= L otherwise. Read for the cases that occur:
  - Redis down for everyone, reports fresh: a window whose Redis decisions all came before the
    outage holds at most (C - R) + sum_r B_r <= C + (N * s - 1) * R (<= C when s <= 1/N).
    One entirely inside the outage: <= N * L (~ C for s ~ 1/N).
  - Recovery: once every replica has written back, windows whose last Redis decision follows the
    last write-back are exact (<= C) again, including those that reach back into the outage.
    A window in which Redis decided while some replica was still degraded (its probe not yet
    answered) can exceed C by that replica's local admissions in it: <= B_r if the outage was
    shorter than P, else <= L. So the worst window across an outage shorter than P is
    C + sum_r B_r <= C + N * s * R (the 2,000,000/day limit, 100,000 left, 3 replicas at 0.34:
    at most 102,000 admitted during the outage, and at most that over C in any window, instead
    of 3 * 680,000 never counted).
  - Partition (some replicas still reach Redis): Redis goes on admitting up to C per window to
    them; every cut-off replica adds up to B_r, then L, per window until it is back. No rule can
    do better without the cut-off replica stopping altogether.
  - Staleness: R_r is as fresh as r's last Redis decision on that limit; an idle replica's report
    may miss what others admitted after it. And a Redis that comes back EMPTY (restarted without
    persistence) has forgotten every admission before the outage: only the write-backs are
    restored, so the first period after it can hold up to C more.
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

    def next_free_us(self, now_us: int) -> int:
        """Microseconds until the oldest counted unit leaves the window (0 when none is counted)."""
        self._evict(now_us)
        if not self.buckets:
            return 0
        return self.geometry.retry_after_us(now_us, [next(iter(self.buckets.items()))], 1)

    def add(self, now_us: int, cost: int) -> None:
        """Count `cost` units in the current bucket."""
        index = now_us // self.geometry.width_us
        self.buckets[index] = self.buckets.get(index, 0) + cost
        self.total += cost

    def remove(self, buckets: tuple[tuple[int, int], ...]) -> None:
        """Stop counting `(bucket index, units)` counted before (those evicted since are gone)."""
        for index, units in buckets:
            held = self.buckets.get(index)
            if held is None:
                continue
            taken = min(held, units)
            self.total -= taken
            if held == taken:
                del self.buckets[index]
            else:
                self.buckets[index] = held - taken


@dataclass(frozen=True)
class Debit:
    """Units one replica admitted locally for one limit, to be written back into Redis."""

    key: str
    geometry: Geometry
    at_us: int  # the local clock when the journal was read
    buckets: tuple[tuple[int, int], ...]  # (local bucket index, units), oldest first

    def ages_us(self) -> list[tuple[int, int]]:
        """(age, units) pairs: each bucket's units placed at the end of its bucket, `age` before
        `at_us` (so the write-back counts them at least as long as the local window did)."""
        width = self.geometry.width_us
        return [(max(0, self.at_us - ((index + 1) * width - 1)), units) for index, units in self.buckets]
