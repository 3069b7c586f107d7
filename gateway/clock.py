"""The one time source of the gateway: `Clock` (now, sleep) and the production `SYSTEM_CLOCK`.

Every component that measures or waits for time takes a `clock: Clock` keyword argument that
defaults to `SYSTEM_CLOCK`, so the composition root wires nothing and a test passes one manual
clock instead:

    ratelimit   AdmissionLimiter and its backends: when to refuse, how long to wait, the
                local windows' buckets
    dedupe      LocalDeduplicator: lease and retention expiry; every backend: the lease renewer's
                beat; RedisDeduplicator: the wake-up subscription's reconnect backoff
    operations  the trackers: freshness of a cached state, the poll loop, wait deadlines, the
                Redis tracker's lease beat and listener backoff
    rework      RedisPoolLock: the lock wait and the lease renewer; PoolWriter: the wait for a
                pool operation and the reopen deadline
    shared_state  RedisHealth (through SharedRedis): the probe interval while Redis is down;
                Subscription: the re-subscription backoff
    toloka      RetryPolicy: the pause between attempts of one Toloka request

`now()` is in the domain of `Call.deadline`, so a component can compare the two, and a `Call`
carries the clock its deadline is on (`Call.remaining()` reads it): a test that drives a component
with a manual clock gives its calls the same clock. Not modelled here, on purpose: Redis `TIME` (the clock the
Lua scripts decide on, shared by every replica) and the wall-clock timestamps of the emulator.

Timeouts that wait on an event (`asyncio.timeout` around a wake-up, a Redis round trip) stay on
the event loop's own clock: they bound real waits for real I/O.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and a way to wait for them to pass."""

    def now(self) -> float:
        """Seconds on a monotonic scale, comparable with `Call.deadline`."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` (<= 0: none) have passed on this clock."""
        ...


class SystemClock:
    """`time.monotonic()` and `asyncio.sleep()`: the production clock."""

    def now(self) -> float:
        """Seconds from `time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Clock = SystemClock()
