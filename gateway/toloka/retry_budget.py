"""A process-wide retry budget, so a Toloka outage is not multiplied by the gateway's retries.

The same token scheme as gRPC's retry throttling: the budget holds up to `max_tokens`; every
retryable failure takes one token and every success gives back `token_ratio`. Retries are
allowed only while more than half the tokens are left. In normal operation failures are rare and
the budget stays full; when Toloka fails most requests, retries stop after a few failures and
each call makes one attempt (its caller, or a mesh, gets UNAVAILABLE with RetryInfo and decides),
until successes refill the budget.
"""

from __future__ import annotations


class RetryBudget:
    """Decides whether one more retry is allowed, from the recent ratio of failures to successes."""

    def __init__(self, *, max_tokens: float, token_ratio: float) -> None:
        self._max = max_tokens
        self._ratio = token_ratio
        self._tokens = max_tokens

    @property
    def tokens(self) -> float:
        """Tokens left (for metrics and tests)."""
        return self._tokens

    def on_success(self) -> None:
        """An attempt got an answer that needs no retry."""
        self._tokens = min(self._max, self._tokens + self._ratio)

    def on_failure(self) -> None:
        """An attempt failed in a way a retry might fix."""
        self._tokens = max(0.0, self._tokens - 1)

    def allows_retry(self) -> bool:
        """True while more than half the budget is left."""
        return self._tokens > self._max / 2
