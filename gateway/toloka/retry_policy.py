"""RetryPolicy: which failed attempts are retried, how long to wait, and when to stop.

A retry needs all of: a retryable failure (408, 429, 500, 503, 504, or no answer at all), an
attempt left (`max_attempts`), room in the process-wide `RetryBudget`, a `Retry-After` no longer
than `backoff_max_s` (a longer one goes back to the caller as RetryInfo), and a pause that ends
before the caller's deadline. The pause is exponential backoff with jitter (a random point
between half and all of the exponential ceiling), never shorter than Toloka's `Retry-After`.
Time and randomness are injected (the one `Clock` for the pauses, `rng` for the jitter), so every
decision is testable without real time.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway import errors
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.settings import TolokaSettings
from gateway.toloka import error_map
from gateway.toloka.retry_budget import RetryBudget

RETRYABLE_STATUSES = frozenset({408, 429, 500, 503, 504})


def retryable_status(status: int) -> bool:
    """True for the HTTP statuses a later attempt may fix (a request without an answer always may)."""
    return status in RETRYABLE_STATUSES


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


@dataclass(frozen=True)
class Failure:
    """An attempt that failed in a way a retry might fix."""

    error: errors.GatewayError
    may_have_acted: bool  # sent without an answer, or a 5xx: Toloka may have performed it


class RetryPolicy:
    """Predicate, backoff, attempt and deadline bounds, and the retry budget of Toloka requests."""

    def __init__(
        self,
        *,
        max_attempts: int,
        backoff_initial_s: float,
        backoff_max_s: float,
        request_timeout_s: float,
        budget: RetryBudget,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
        retryable: Callable[[int], bool] = retryable_status,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.budget = budget
        self._clock = clock
        self._rng = rng
        self._retryable = retryable

    @classmethod
    def from_settings(
        cls,
        settings: TolokaSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
    ) -> RetryPolicy:
        """The policy `[toloka]` configures, with a fresh process-wide budget."""
        return cls(
            max_attempts=settings.max_attempts,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            request_timeout_s=settings.request_timeout_s,
            budget=RetryBudget(
                max_tokens=settings.retry_budget_tokens, token_ratio=settings.retry_budget_ratio
            ),
            clock=clock,
            rng=rng,
        )

    def retries(self, status: int) -> bool:
        """Whether an answer with this HTTP status is worth another attempt."""
        return self._retryable(status)

    def attempt_timeout(self, remaining: float | None, *, cut_at_deadline: bool) -> float:
        """How long one attempt may take; DeadlineExceeded once the caller's deadline has passed.

        Nothing is sent after the deadline. An attempt that must not be repeated blind (a sync
        create, `cut_at_deadline=False`) is not cut at the deadline: cut, its outcome would be
        unknown for good. It runs to `request_timeout_s` while the caller is answered
        DEADLINE_EXCEEDED at its deadline (the dedupe hold outlives the caller) and its retry gets
        the stored outcome.
        """
        if remaining is not None and remaining <= 0:
            raise error_map.deadline_exceeded()
        if remaining is None or not cut_at_deadline:
            return self.request_timeout_s
        return min(self.request_timeout_s, remaining)

    def check_deadline(self, failure: errors.GatewayError, attempt: int, remaining: float | None) -> None:
        """DeadlineExceeded (naming the attempts and the last failure) once the deadline has passed."""
        if remaining is not None and remaining <= 0:
            raise error_map.deadline_exceeded(failure, attempts=attempt)

    def delay(self, failure: errors.GatewayError, attempt: int, remaining: float | None) -> float:
        """The pause before attempt `attempt + 1`, or raise `failure` when there should be none.

        No retry when attempts are used up, when the budget is spent (the failure then carries
        `retries_throttled` and RetryInfo), when Toloka asks for a longer pause than the gateway
        waits within one call (the caller gets RetryInfo instead), or when the pause would
        outlast the caller's deadline (`remaining` seconds; None for no deadline).
        """
        if attempt >= self.max_attempts:
            raise failure
        if not self.budget.allows_retry():
            # Most recent attempts failed: retrying would multiply Toloka's trouble (and, behind a
            # mesh that retries too, multiply it again). The caller gets RetryInfo instead.
            failure.metadata["retries_throttled"] = "true"
            failure.retry_after = failure.retry_after or self.backoff(attempt, None)
            raise failure
        asked = failure.retry_after
        if asked is not None and asked > self.backoff_max_s:
            raise failure
        delay = self.backoff(attempt, asked)
        if remaining is not None and delay >= remaining:
            failure.retry_after = failure.retry_after or delay
            raise failure
        return delay

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (half to all of the ceiling), never shorter than Retry-After."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * float(2 ** (attempt - 1)))
        delay: float = ceiling * (0.5 + 0.5 * self._rng())
        return max(delay, retry_after or 0.0)

    async def pause(self, seconds: float) -> None:
        """Wait between attempts, on the injected clock."""
        await self._clock.sleep(seconds)
