"""The per-call context that flows from the RPC layer down to every Toloka request."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


@dataclass
class Call:
    """Who is calling, until when, and what Toloka said along the way.

    `deadline` is an absolute `time.monotonic()` value, or None for no deadline. Every layer
    that waits (rate limiter, retries, dedupe, poller) bounds its wait by it.
    """

    caller: str = "anonymous"
    deadline: float | None = None
    # The pools the caller may use, or None for every pool (set once the caller is authorised).
    pools: frozenset[str] | None = None
    # An id the caller's infrastructure keeps across retries of this request (a mesh's x-request-id),
    # or "": a create without operation_id derives its id from it, so a mesh retry is a duplicate.
    retry_key: str = ""
    # Correlates log lines; not a secret, so a cheap PRNG (no syscall per call) is enough.
    request_id: str = field(default_factory=lambda: f"{random.getrandbits(64):016x}")
    toloka_request_ids: list[str] = field(default_factory=list)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        """True once the deadline has passed."""
        left = self.remaining()
        return left is not None and left <= 0
