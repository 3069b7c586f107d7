"""Builds the limiter the gateway runs with, from its settings and (optional) Redis client."""

from __future__ import annotations

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.ratelimit.admission import AdmissionLimiter
from gateway.ratelimit.fallback_limiter import FallbackRateLimiter
from gateway.ratelimit.local_limiter import LocalRateLimiter
from gateway.ratelimit.redis_limiter import RedisRateLimiter
from gateway.settings import RateLimitSettings
from gateway.shared_state import SharedRedis


def build_rate_limiter(
    settings: RateLimitSettings, shared: SharedRedis | None, *, clock: Clock = SYSTEM_CLOCK
) -> AdmissionLimiter:
    """Redis with a degraded local fallback when `shared` is given; otherwise the whole limit locally."""
    if shared is None:
        return LocalRateLimiter(settings=settings, clock=clock, share=1.0)
    return FallbackRateLimiter(
        primary=RedisRateLimiter(shared=shared, settings=settings, clock=clock),
        fallback=LocalRateLimiter(settings=settings, clock=clock, share=settings.degraded_share),
        clock=clock,
    )
