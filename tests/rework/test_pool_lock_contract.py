"""One suite for every pool lock: in-process, and the Redis lease in its FallbackPoolLock on a
standalone redis-server and on a Redis Cluster. Each Redis lock is a replica with its own client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from gateway import errors
from gateway.call import Call
from gateway.rework.pool_lock import PoolLock, build_pool_lock
from gateway.settings import ReworkSettings
from gateway.shared_state import SharedRedis, connect_redis

MakeLock = Callable[[], PoolLock]


@pytest.fixture(params=["local", "redis", "cluster"])
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[MakeLock]:
    """Makes the locks of one fleet: in-process, the same lock (one replica); else a new replica."""
    settings = ReworkSettings(lock_lease_s=1.0, lock_wait_s=5.0, key_prefix=f"t{uuid.uuid4().hex[:6]}")
    if request.param == "local":
        lock = build_pool_lock(settings, None)
        yield lambda: lock
        return
    url = (
        request.getfixturevalue("redis_url")
        if request.param == "redis"
        else request.getfixturevalue("redis_cluster_proc").url
    )
    opened: list[SharedRedis] = []

    def make() -> PoolLock:
        opened.append(SharedRedis(connect_redis(url)))
        return build_pool_lock(settings, opened[-1])

    yield make
    for shared in opened:
        await shared.close()


async def test_holders_of_one_pool_run_one_at_a_time_across_replicas(replicas: MakeLock) -> None:
    locks = [replicas(), replicas()]
    inside: list[int] = []
    most = 0

    async def hold(n: int) -> None:
        nonlocal most
        async with locks[n % 2].hold("9", call=Call(deadline=time.monotonic() + 5)):
            inside.append(n)
            most = max(most, len(inside))
            await asyncio.sleep(0.02)  # the body's work: overlap would show while it runs
            inside.remove(n)

    await asyncio.gather(*(hold(n) for n in range(6)))
    assert most == 1


async def test_different_pools_do_not_wait_for_each_other(replicas: MakeLock) -> None:
    lock, other = replicas(), replicas()
    async with lock.hold("9", call=Call(deadline=time.monotonic() + 5)):
        started = time.monotonic()
        async with other.hold("10", call=Call(deadline=time.monotonic() + 5)):
            assert time.monotonic() - started < 0.5


async def test_a_waiter_gets_deadline_exceeded_while_held_and_the_lock_at_once_after(
    replicas: MakeLock,
) -> None:
    holder, waiter = replicas(), replicas()
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold() -> None:
        async with holder.hold("9", call=Call(deadline=time.monotonic() + 5)):
            entered.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await entered.wait()
    with pytest.raises(errors.DeadlineExceeded):
        async with waiter.hold("9", call=Call(deadline=time.monotonic() + 0.3)):
            pass
    release.set()
    await task
    started = time.monotonic()
    async with waiter.hold("9", call=Call(deadline=time.monotonic() + 5)):
        assert time.monotonic() - started < 0.5  # released, not left to expire
    assert not waiter.degraded
