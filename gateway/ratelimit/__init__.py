"""Fleet-wide rate limits and per-caller quotas: RateLimiter and its backends."""

from gateway.ratelimit.admission import AdmissionLimiter
from gateway.ratelimit.decision import Decision, Hit, LimitRef, Refusal
from gateway.ratelimit.factory import build_rate_limiter
from gateway.ratelimit.fallback_limiter import FallbackRateLimiter
from gateway.ratelimit.limiter import RateLimiter
from gateway.ratelimit.local_limiter import LocalRateLimiter
from gateway.ratelimit.redis_limiter import RedisRateLimiter
from gateway.ratelimit.snapshot import LimitState, QuotaSnapshot
from gateway.ratelimit.stats import LimiterStats

__all__ = [
    "AdmissionLimiter",
    "Decision",
    "FallbackRateLimiter",
    "Hit",
    "LimitRef",
    "LimitState",
    "LimiterStats",
    "LocalRateLimiter",
    "QuotaSnapshot",
    "RateLimiter",
    "RedisRateLimiter",
    "Refusal",
    "build_rate_limiter",
]
