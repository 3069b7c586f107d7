"""The whole fleet's admissions across a Redis outage and recovery, against the stated bound.

On one manual clock (Redis's time included), three replicas share one Redis; each can be cut off
from it (every command fails as a refused connection) without Redis losing its counters, and is
brought back by its own probe (its shared health's `probe_once`), one after another. The bound checked is the one
window.py states ("Degraded mode"): for every window W of the period,

    fleet(W) <= C + sum of the local admissions in W not yet written back when Redis last decided in W

(N * L when Redis decided nothing in W), each replica's local spend limited by its seed
`min(L, floor(share * remaining))` for a period after its last report.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest
from redis import exceptions as redis_errors

from gateway.call import Call
from gateway.errors import RateLimited
from gateway.limit_spec import LimitSpec
from gateway.ratelimit import FallbackRateLimiter, LocalRateLimiter, RedisRateLimiter
from gateway.ratelimit.decision import scaled_capacity
from gateway.request_kinds import KIND_CREATE_TASKS
from gateway.settings import RateLimitSettings
from gateway.shared_state import AnyRedis, SharedRedis, connect_redis
from tests.ratelimit.conftest import T0
from tests.support.clock import ManualClock

CAPACITY, PERIOD, SHARE, REPLICAS = 100, 30.0, 0.34, 3
USED_BEFORE = 90  # most of the limit is used when Redis goes
STEP = 0.1


class Partition:
    """A Redis client that can be cut off: while `down`, every command fails as unreachable."""

    def __init__(self, client: AnyRedis) -> None:
        self.client = client
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not self.down or not callable(attr):
            return attr

        async def refused(*args: Any, **kwargs: Any) -> Any:
            raise redis_errors.ConnectionError("partitioned (test)")

        return refused


@dataclass
class Admission:
    seq: int  # its place in the fleet's order of admissions
    replica: int
    at: float
    backend: str
    remaining: int


@pytest.fixture
async def partitions(redis_url: str) -> AsyncIterator[list[Partition]]:
    opened = [Partition(connect_redis(redis_url)) for _ in range(REPLICAS)]
    yield opened
    for p in opened:
        await p.client.aclose()


def in_window(items: list[Admission], start: float) -> list[Admission]:
    """Admissions in [start, start + PERIOD): every window that starts at an admission."""
    return [a for a in items if start <= a.at < start + PERIOD - 1e-9]


@pytest.mark.parametrize("outage_s", [10.0, 45.0], ids=["outage-shorter-than-period", "outage-longer"])
async def test_fleet_stays_within_the_stated_bound_across_an_outage_and_recovery_when_most_was_used(
    partitions: list[Partition], outage_s: float
) -> None:
    clock = ManualClock(T0, autojump=True)
    spec = LimitSpec("fleet_long", (KIND_CREATE_TASKS,), CAPACITY, PERIOD)
    settings = RateLimitSettings(
        limits=(spec,), key_prefix=f"tgw-{uuid.uuid4().hex[:8]}", degraded_share=SHARE
    )
    replicas = [
        FallbackRateLimiter(
            primary=RedisRateLimiter(
                # its health's probe never wakes: the test runs each probe
                shared=SharedRedis(cast(AnyRedis, p), clock=clock.never_waking()),
                settings=settings,
                clock=clock,
                server_time=clock.now,
            ),
            fallback=LocalRateLimiter(settings=settings, clock=clock, share=SHARE),
        )
        for p in partitions
    ]
    admitted: list[Admission] = []

    async def round_of_requests() -> None:
        for index, replica in enumerate(replicas):
            try:
                d = await replica.admit(KIND_CREATE_TASKS, tasks=1, call=Call(deadline=clock.now()))
            except RateLimited:
                continue
            admitted.append(Admission(len(admitted), index, d.at, d.backend, d.remaining[0][1]))

    async def run_until(end: float, each_step: Callable[[], Awaitable[None]] | None = None) -> None:
        while clock.now() < end - 1e-9:
            await clock.advance(STEP)
            if each_step is not None:
                await each_step()
            await round_of_requests()

    try:
        while len(admitted) < USED_BEFORE:  # the fleet uses 90 of 100, all on Redis
            await clock.advance(STEP)
            await round_of_requests()
        assert len(admitted) == USED_BEFORE
        last_report = {a.replica: a.remaining for a in admitted}  # what Redis said was left, last
        reported_at = {a.replica: a.at for a in admitted}  # ... and when
        await clock.advance_to(T0 + 10.0)
        for p in partitions:
            p.down = True
        down_at = clock.now()
        await run_until(down_at + outage_s)
        assert all(r.degraded for r in replicas)
        for p in partitions:
            p.down = False
        # replica -> how many admissions the fleet had made when its write-back reached Redis
        # (an order, not a time: a write-back and a decision can share one instant)
        written_back: dict[int, int] = {}
        for index, replica in enumerate(replicas):  # each one's probe answers 1 s after the last
            if index:
                await run_until(clock.now() + 1.0)
            assert await replica.health.probe_once()
            written_back[index] = len(admitted)
        await run_until(clock.now() + 3 * PERIOD)
    finally:
        for replica in replicas:
            await replica.close()

    check_the_bound(FleetRun(admitted, written_back, last_report, reported_at, down_at, outage_s))


@dataclass
class FleetRun:
    """What one outage-and-recovery run recorded."""

    admitted: list[Admission]
    written_back: dict[int, int]  # replica -> admissions made when its write-back reached Redis
    last_report: dict[int, int]  # replica -> what Redis last said was left before the outage
    reported_at: dict[int, float]  # ... and when
    down_at: float
    outage_s: float


def check_the_bound(run: FleetRun) -> None:
    """window.py's bound, in every window that starts at an admission, and utilisation after."""
    admitted, written_back, last_report = run.admitted, run.written_back, run.last_report
    local_capacity = scaled_capacity(CAPACITY, SHARE)
    budget = {r: min(local_capacity, math.floor(SHARE * left)) for r, left in last_report.items()}
    assert sum(budget.values()) <= CAPACITY - USED_BEFORE  # share <= 1/N of fresh reports: within C
    local = [a for a in admitted if a.backend == "local"]
    # (a) the seed: until its report is a period old, each replica spends its share of what was left
    first_period = [a for a in local if a.at < run.reported_at[a.replica] + PERIOD]
    for r in range(REPLICAS):
        assert 0 < len([a for a in first_period if a.replica == r]) <= budget[r]
    assert len(first_period) <= sum(budget.values())  # not N * L = 102 as before
    all_back = written_back[REPLICAS - 1]
    assert {a.replica for a in admitted[all_back:]} == set(range(REPLICAS))

    worst_excess = 0
    for start in sorted({a.at for a in admitted}):
        window = in_window(admitted, start)
        by_redis = [a.seq for a in window if a.backend == "redis"]
        if not by_redis:
            assert len(window) <= REPLICAS * local_capacity
            continue
        last_redis = max(by_redis)  # the place of Redis's last decision in W in the fleet's order
        # (b) the write-back: local admissions count once their replica wrote them back.
        unknown = [a for a in window if a.backend == "local" and written_back[a.replica] > last_redis]
        assert len(window) <= CAPACITY + len(unknown), f"window at {start - T0:.1f}s"
        if admitted[last_redis].at < run.down_at:  # Redis decided only before the outage
            assert len(window) <= CAPACITY - min(last_report.values()) + sum(budget.values())
        if last_redis >= all_back:  # every write-back came first: exact again
            assert len(window) <= CAPACITY, f"window at {start - T0:.1f}s"
        if run.outage_s < PERIOD:  # the worst window of a short outage
            assert len(window) <= CAPACITY + sum(budget.values())
        worst_excess = max(worst_excess, len(window) - CAPACITY)
    if run.outage_s < PERIOD:
        # The replicas still degraded when the first one recovered had spent 3 + 3 that Redis had
        # not seen yet: the only excess, and exactly what the bound allows.
        assert worst_excess == budget[1] + budget[2]
    # Utilisation once every replica is back: the limit is used, not starved by the write-backs.
    after = sorted(a.at for a in admitted[all_back:] if a.at >= admitted[all_back].at + PERIOD)
    assert after and bisect.bisect_left(after, after[0] + PERIOD) >= 0.98 * CAPACITY
