"""The per-call context that flows from the RPC layer down to every Toloka request."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.clock import SYSTEM_CLOCK, Clock


class Releasable(Protocol):
    """Something a call holds until its work ends (a request's memory reservation)."""

    def release(self) -> None:
        """Give it back (idempotent)."""
        ...


@dataclass
class Call:
    """Who is calling, until when, and what Toloka said along the way.

    `deadline` is a time on `clock` (`time.monotonic()` seconds on the system clock), or None
    for no deadline. Every layer that waits (rate limiter, retries, dedupe, poller) bounds its
    wait by it; a test that drives a component with a manual clock gives its calls that clock.
    """

    caller: str = "anonymous"
    deadline: float | None = None
    # The pools the caller may use, or None for every pool (set once the caller is authorised).
    pools: frozenset[str] | None = None
    # The Toloka account the call goes to (set once the caller is authorised).
    account: str = ""
    # An id the caller's infrastructure keeps across retries of this request (a mesh's x-request-id),
    # or "": a create without operation_id derives its id from it, so a mesh retry is a duplicate.
    retry_key: str = ""
    # Correlates log lines; not a secret, so a cheap PRNG (no syscall per call) is enough.
    request_id: str = field(default_factory=lambda: f"{random.getrandbits(64):016x}")
    toloka_request_ids: list[str] = field(default_factory=list)
    # Shadow limits that would have refused one of the call's Toloka requests (names, once each).
    shadow_refusals: list[str] = field(default_factory=list)
    # The trace the call's spans belong to (32 hex digits), or "" when tracing is off.
    trace_id: str = ""
    # What the call's work holds (its request's memory reservation): released when the call ends,
    # unless work that outlives the caller takes it over (`hand_over_held`).
    held: list[Releasable] = field(default_factory=list)
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False, compare=False)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), or None without one."""
        return None if self.deadline is None else self.deadline - self.clock.now()

    def expired(self) -> bool:
        """True once the deadline has passed."""
        left = self.remaining()
        return left is not None and left <= 0

    def release_held(self) -> None:
        """Give back what the call's work holds (the call has ended)."""
        self.hand_over_held()()

    def hand_over_held(self) -> Callable[[], None]:
        """Take over what the call holds, for work that goes on after the caller left; returns its release."""
        held, self.held = self.held, []

        def release() -> None:
            for item in held:
                item.release()

        return release
