"""What GetQuota reads: every limit that applies to a caller, as of one instant, debiting nothing."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ratelimit.decision import Charge


@dataclass(frozen=True)
class LimitState:
    """One limit now: what can be spent, and when its window frees the next unit if nothing can."""

    charge: Charge
    remaining: int
    next_unit_in: float  # seconds; 0 while units remain


@dataclass(frozen=True)
class QuotaSnapshot:
    """The limits of one caller read together (one Redis round trip, or the local windows)."""

    at: float  # the reading clock, in seconds (Redis TIME for the Redis backend)
    limits: tuple[LimitState, ...]
    backend: str = "local"  # "redis" or "local"
    degraded: bool = False  # the local share answered because Redis is unreachable
    cooldown: float = 0.0  # seconds a Toloka 429 still holds back the requests read for (0: none)


def limit_state(charge: Charge, used: int, wait_s: float) -> LimitState:
    """The state of `charge`'s limit with `used` units counted; `wait_s` is when one more unit fits
    (only read when none does now)."""
    remaining = max(0, charge.measured_capacity - used)
    return LimitState(charge, remaining, 0.0 if remaining > 0 else wait_s)
