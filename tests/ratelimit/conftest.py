"""Fixtures for the rate-limiter suites: a manual clock and limiters on either backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from gateway.ratelimit import AdmissionLimiter, FallbackRateLimiter, LocalRateLimiter, RedisRateLimiter
from gateway.settings import RateLimitSettings
from gateway.shared_state import SharedRedis, connect_redis
from tests.support.clock import ManualClock

CLUSTER_BUS_OFFSET = 10_000

T0 = 1000.0  # on a bucket boundary for every period the suites use


MakeLimiter = Callable[[RateLimitSettings], AdmissionLimiter]


@pytest.fixture
def clock() -> ManualClock:
    """Time that moves only when a test, or a limiter's own wait, moves it (autojump)."""
    return ManualClock(T0, autojump=True)


@pytest.fixture(params=["local", "redis", "fallback"])
async def make_limiter(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[MakeLimiter]:
    """Builds limiters on the parametrised backend, all reading the same manual clock.

    The Redis backend takes its time from the clock too (the scripts' test-only time override),
    so every backend sees exactly the same instants. `fallback` is the Redis backend in the
    `FallbackRateLimiter` production runs it in (Redis up: the wrapper must change nothing).
    """
    clients: list[SharedRedis] = []

    def make(settings: RateLimitSettings) -> AdmissionLimiter:
        if request.param == "local":
            return LocalRateLimiter(settings=settings, clock=clock)
        shared = SharedRedis(connect_redis(request.getfixturevalue("redis_url")))
        clients.append(shared)
        redis = RedisRateLimiter(shared=shared, settings=settings, clock=clock, server_time=clock.now)
        if request.param == "redis":
            return redis
        local = LocalRateLimiter(settings=settings, clock=clock, share=settings.degraded_share)
        return FallbackRateLimiter(primary=redis, fallback=local)

    yield make
    for shared in clients:
        await shared.close()
