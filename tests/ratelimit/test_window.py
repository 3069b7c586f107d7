"""Pure checks of the bucket geometry and of the factory's choice of backend."""

from __future__ import annotations

import pytest

from gateway.ratelimit import FallbackRateLimiter, LocalRateLimiter, build_rate_limiter
from gateway.ratelimit.window import US, Geometry
from gateway.settings import RateLimitSettings, default_limits
from gateway.shared_state import SharedRedis, connect_redis


@pytest.mark.parametrize("period_s", [0.0015, 0.5, 1.0, 7.0, 60.0, 3600.0, 86400.0, 0.333333])
def test_counted_buckets_cover_a_whole_period_with_at_most_one_bucket_to_spare(period_s: float) -> None:
    g = Geometry.for_period(period_s)
    covered = (g.span - 1) * g.width_us
    assert covered >= round(period_s * US)
    assert covered < round(period_s * US) + g.width_us
    assert g.span <= 102  # the Redis hash stays a small listpack


def test_factory_runs_the_whole_limit_in_process_when_no_redis_is_configured() -> None:
    limiter = build_rate_limiter(RateLimitSettings(limits=default_limits()), None)
    assert isinstance(limiter, LocalRateLimiter)
    assert not limiter.degraded


async def test_factory_puts_redis_first_with_a_local_share_behind_it(redis_url: str) -> None:
    shared = SharedRedis(connect_redis(redis_url))
    settings = RateLimitSettings(limits=default_limits(), degraded_share=0.25)
    limiter = build_rate_limiter(settings, shared)
    assert isinstance(limiter, FallbackRateLimiter)
    assert not limiter.degraded
    charges = limiter.fallback.planner.charges("create_tasks", tasks=1, caller="a")
    assert {c.ref.name: c.capacity for c in charges}["create_tasks_per_minute"] == 25_000
    await limiter.close()
    await shared.close()
