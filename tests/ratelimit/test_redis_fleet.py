"""Redis-only behaviour: several replicas on one Redis (standalone and Cluster), outages, memory."""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from gateway.call import Call
from gateway.errors import RateLimited
from gateway.limit_spec import LimitSpec
from gateway.ratelimit import (
    AdmissionLimiter,
    Decision,
    FallbackRateLimiter,
    LocalRateLimiter,
    RedisRateLimiter,
)
from gateway.ratelimit.decision import limit_key
from gateway.ratelimit.window import Geometry
from gateway.request_kinds import ALL_KINDS, KIND_CREATE_TASKS
from gateway.settings import RateLimitSettings
from gateway.shared_state import RedisHealth, SharedRedis, connect_redis
from tests.ratelimit.conftest import T0
from tests.support.clock import ManualClock
from tests.support.redis_servers import RedisCluster, RedisServer


def fleet_settings(limit: LimitSpec, **kw: object) -> RateLimitSettings:
    # A fresh prefix per test: the Cluster fixture is shared by the session and never flushed.
    return RateLimitSettings(limits=(limit,), key_prefix=f"tgw-{uuid.uuid4().hex[:8]}", **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["standalone", "cluster"])
def fleet_url(request: pytest.FixtureRequest) -> str:
    if request.param == "standalone":
        return str(request.getfixturevalue("redis_url"))
    cluster: RedisCluster = request.getfixturevalue("redis_cluster_proc")
    return cluster.url


@pytest.fixture
async def clients() -> AsyncIterator[list[SharedRedis]]:
    opened: list[SharedRedis] = []
    yield opened
    for shared in opened:
        await shared.close()


async def flood(
    replicas: list[AdmissionLimiter], *, seconds: float, workers: int, stop: asyncio.Event | None = None
) -> list[tuple[int, Decision]]:
    """Every replica's workers ask for capacity non-stop; returns (replica, admitting decision)."""
    admitted: list[tuple[int, Decision]] = []
    end = time.monotonic() + seconds

    async def worker(index: int, limiter: AdmissionLimiter) -> None:
        while time.monotonic() < end and not (stop and stop.is_set()):
            try:
                decision = await limiter.admit(KIND_CREATE_TASKS, tasks=1, call=Call(deadline=end))
            except RateLimited:
                return
            admitted.append((index, decision))

    await asyncio.gather(*(worker(i, r) for i, r in enumerate(replicas) for _ in range(workers)))
    return admitted


def max_in_any_window(times: list[float], period: float) -> int:
    """The most admissions in any window [t, t + period) starting at an admission."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + period) - i for i, t in enumerate(times)), default=0)


def utilisation(times: list[float], capacity: int, period: float, periods: int) -> float:
    """Admissions in the first `periods` whole periods from the first admission, over their capacity."""
    times = sorted(times)
    return bisect.bisect_left(times, times[0] + periods * period) / (capacity * periods)


async def test_replicas_never_exceed_the_limit_in_any_sliding_window_and_use_it_fully(
    fleet_url: str, clients: list[SharedRedis]
) -> None:
    # A 1 s period leaves room for the scheduling delays of a busy 2-core box; the algorithm's
    # own utilisation bound is checked on a manual clock in the contract suite.
    capacity, period = 40, 1.0
    settings = fleet_settings(LimitSpec("fleet", (ALL_KINDS,), capacity, period))
    replicas: list[AdmissionLimiter] = []
    for _ in range(4):
        clients.append(SharedRedis(connect_redis(fleet_url)))
        replicas.append(RedisRateLimiter(shared=clients[-1], settings=settings))
    admitted = await flood(replicas, seconds=3.2, workers=6)
    times = [d.at for _, d in admitted]  # Redis TIME, returned by the script
    assert {d.backend for _, d in admitted} == {"redis"}
    assert {i for i, _ in admitted} == {0, 1, 2, 3}
    assert max_in_any_window(times, period) <= capacity
    assert utilisation(times, capacity, period, periods=3) >= 0.98


async def test_cooldown_reported_by_one_replica_holds_back_another(
    redis_url: str, clients: list[SharedRedis]
) -> None:
    settings = fleet_settings(LimitSpec("fleet", (ALL_KINDS,), 100, 1.0))
    clients += [SharedRedis(connect_redis(redis_url)), SharedRedis(connect_redis(redis_url))]
    first = RedisRateLimiter(shared=clients[0], settings=settings)
    second = RedisRateLimiter(shared=clients[1], settings=settings)
    await first.report_throttled(0.3, kind=KIND_CREATE_TASKS)
    with pytest.raises(RateLimited) as refused:
        await second.acquire(KIND_CREATE_TASKS, tasks=1, call=Call(deadline=time.monotonic() + 0.1))
    assert refused.value.retry_after is not None and 0.2 < refused.value.retry_after <= 0.3
    started = time.monotonic()
    await second.acquire(KIND_CREATE_TASKS, tasks=1, call=Call(deadline=time.monotonic() + 1.0))
    assert time.monotonic() - started >= 0.2


async def test_limit_state_stays_bounded_when_admissions_span_many_periods(
    redis_url: str, clients: list[SharedRedis]
) -> None:
    spec = LimitSpec("busy", (ALL_KINDS,), 1000, 1.0)
    settings = fleet_settings(spec)
    clock = ManualClock(T0, autojump=True)
    clients.append(SharedRedis(connect_redis(redis_url)))
    limiter = RedisRateLimiter(shared=clients[0], settings=settings, clock=clock, server_time=clock.now)
    key = limit_key(settings.key_prefix, spec, None)
    sizes = []
    for step in range(6000):  # one decision every 2 ms of Redis time: 12 periods
        await clock.advance(0.002)
        await limiter.decide(KIND_CREATE_TASKS, tasks=1, caller="anonymous")
        if step in (999, 5999):
            sizes.append(await clients[0].redis.memory_usage(key))
    span = Geometry.for_period(1.0).span
    assert await clients[0].redis.hlen(key) <= span + 2
    assert await clients[0].redis.object("encoding", key) in (b"listpack", "listpack")
    assert sizes[1] is not None and sizes[1] <= 4096
    assert sizes[1] <= sizes[0] * 1.5


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server this test alone may kill and restart, on a port no other suite draws."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


async def wait_until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_replicas_degrade_to_their_local_share_and_recover_when_redis_restarts(
    own_redis: RedisServer, clients: list[SharedRedis]
) -> None:
    capacity, period, share = 20, 0.5, 0.5
    settings = fleet_settings(LimitSpec("fleet", (ALL_KINDS,), capacity, period), degraded_share=share)
    replicas: list[FallbackRateLimiter] = []
    for _ in range(2):
        client = connect_redis(own_redis.url)
        clients.append(SharedRedis(client, health=RedisHealth(client, probe_interval_s=0.2)))
        primary = RedisRateLimiter(shared=clients[-1], settings=settings)
        fallback = LocalRateLimiter(settings=settings, share=share)
        replicas.append(FallbackRateLimiter(primary=primary, fallback=fallback))
    stop = asyncio.Event()
    flooding = asyncio.create_task(flood(list(replicas), seconds=30, workers=4, stop=stop))
    try:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_redis.stop)
        await wait_until(lambda: all(r.degraded for r in replicas), within=5)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(own_redis.start)
        await wait_until(lambda: not any(r.degraded for r in replicas), within=5)
        await asyncio.sleep(0.6)
    finally:
        stop.set()
        admitted = await flooding
        for r in replicas:
            await r.close()
    by_redis = [d.at for _, d in admitted if d.backend == "redis"]
    before = [t for t in by_redis if t < min(d.at for _, d in admitted if d.backend == "redis") + 0.9]
    assert max_in_any_window(by_redis, period) <= capacity
    assert len(by_redis) > len(before)  # Redis decided again after the restart
    for index, replica in enumerate(replicas):
        local = [d.at for i, d in admitted if i == index and d.backend == "local"]
        assert 0 < max_in_any_window(local, period) <= int(capacity * share)
        assert len(local) >= 2 * int(capacity * share)  # kept admitting through the outage
        assert replica.stats.degraded_episodes == 1


async def test_write_back_counts_local_admissions_at_the_time_they_were_made(
    fleet_url: str, clients: list[SharedRedis]
) -> None:
    settings = fleet_settings(LimitSpec("ten_per_s", (ALL_KINDS,), 10, 1.0))
    clock = ManualClock(T0, autojump=True)
    clients.append(SharedRedis(connect_redis(fleet_url)))
    redis = RedisRateLimiter(shared=clients[0], settings=settings, clock=clock, server_time=clock.now)
    local = LocalRateLimiter(settings=settings, clock=clock)
    local.record_admissions = True
    await clock.advance(0.2)
    for _ in range(4):
        assert (await local.decide(KIND_CREATE_TASKS, tasks=1, caller="anonymous")).admitted
    await clock.advance(0.3)
    debits = local.unwritten()
    await redis.write_back(debits)
    local.written(debits)
    assert local.unwritten() == []
    decisions = [await redis.decide(KIND_CREATE_TASKS, tasks=1, caller="anonymous") for _ in range(7)]
    assert [d.admitted for d in decisions] == [True] * 6 + [False]
    # The four debited units sit in the bucket of T0 + 0.2 s (10 ms wide), which leaves at T0 + 1.21 s.
    assert decisions[-1].retry_after == pytest.approx(0.71, abs=1e-6)
    await clock.advance(0.71)
    decisions = [await redis.decide(KIND_CREATE_TASKS, tasks=1, caller="anonymous") for _ in range(5)]
    assert [d.admitted for d in decisions] == [True] * 4 + [False]


async def test_peek_on_one_replica_sees_what_every_replica_admitted_on_standalone_and_cluster(
    fleet_url: str, clients: list[SharedRedis]
) -> None:
    clock = ManualClock(T0)
    quota = LimitSpec("quota", (ALL_KINDS,), 3, 60.0)
    settings = RateLimitSettings(
        limits=(LimitSpec("fleet_peek", (KIND_CREATE_TASKS,), 10, 60.0, "tasks"),),
        caller_quotas={"svc": (quota,)},
        key_prefix=f"tgw-{uuid.uuid4().hex[:8]}",
    )
    replicas = []
    for _ in range(3):
        clients.append(SharedRedis(connect_redis(fleet_url)))
        replicas.append(
            RedisRateLimiter(shared=clients[-1], settings=settings, clock=clock, server_time=clock.now)
        )
    for i, replica in enumerate(replicas):
        await replica.admit(KIND_CREATE_TASKS, tasks=i + 1, call=Call(caller="svc"))  # 1 + 2 + 3 tasks
    seen = await replicas[0].peek(caller="svc")
    assert [(s.charge.ref.subject, s.remaining) for s in seen.limits] == [
        ("fleet_peek", 4),
        ("caller:svc/quota", 0),
    ]
    # T0 falls in the 0.6 s bucket [T0 - 0.4, T0 + 0.2), which leaves the 101-bucket span at T0 + 60.2 s.
    assert seen.limits[1].next_unit_in == pytest.approx(60.2, abs=1e-6)
    for replica in replicas[1:]:
        assert [s.remaining for s in (await replica.peek(caller="svc")).limits] == [4, 0]
