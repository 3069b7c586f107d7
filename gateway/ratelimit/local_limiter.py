"""In-process limiter: one replica's counters, the same sliding-window rule as Redis.

As the degraded fallback (`FallbackRateLimiter`) it also keeps a journal of what it admitted, so
those admissions can be written back to Redis on recovery, and starts each limit it has news of
from the budget `seed` gives it (the rule and the bound: window.py, "Degraded mode").
"""

from __future__ import annotations

import math

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.ratelimit.admission import AdmissionLimiter
from gateway.ratelimit.decision import ACCOUNT_WIDE, Charge, Decision, Refusal, scaled_capacity
from gateway.ratelimit.snapshot import LimitState, QuotaSnapshot, limit_state
from gateway.ratelimit.window import US, Debit, SlidingWindow
from gateway.settings import RateLimitSettings

# Drop idle windows (e.g. of callers gone quiet) every this many decisions, so memory follows
# the callers active within one period rather than every caller ever seen.
SWEEP_EVERY = 1024


class LocalRateLimiter(AdmissionLimiter):
    """Holds `share` of every limit in this process: alone (no Redis) or as the degraded fallback."""

    def __init__(
        self, *, settings: RateLimitSettings, clock: Clock = SYSTEM_CLOCK, share: float = 1.0
    ) -> None:
        super().__init__(settings=settings, clock=clock, share=share)
        self.share = share
        # Set by FallbackRateLimiter: keep what is admitted in `_journal` until written back.
        self.record_admissions = False
        self._windows: dict[str, SlidingWindow] = {}
        self._journal: dict[str, SlidingWindow] = {}
        self._cooldown_until: dict[str, float] = {}  # scope (a kind, or ACCOUNT_WIDE) -> end
        self._since_sweep = 0

    async def _decide(
        self, kind: str, charges: tuple[Charge, ...], *, frees: bool = False, within_s: float | None = None
    ) -> Decision:
        """Check and debit every charge at once; nothing awaits in between, so it is atomic."""
        now = self.clock.now()
        now_us = round(now * US)
        cooldown_until = max(self._cooldown_until.get(ACCOUNT_WIDE, 0.0), self._cooldown_until.get(kind, 0.0))
        if now < cooldown_until:
            return Decision(False, now, refusals=(Refusal(None, cooldown_until - now),))
        windows = [self._window(c) for c in charges]
        refusals = tuple(
            self._refusal(c, w, now_us)
            for c, w in zip(charges, windows, strict=True)
            if w.used(now_us) + c.cost > c.capacity
        )
        if refusals:
            return Decision(False, now, refusals=refusals)
        remaining = tuple((c.ref, self._count(c, w, now_us)) for c, w in zip(charges, windows, strict=True))
        self._maybe_sweep(now_us)
        frees_in = tuple(w.next_free_us(now_us) / US for w in windows) if frees else ()
        return Decision(True, now, remaining=remaining, frees_in=frees_in)

    def _count(self, charge: Charge, window: SlidingWindow, now_us: int) -> int:
        """Count an admitted request in one charge's window (and journal); returns what is left.
        A trial that it does not fit is not counted: what is left is then negative."""
        if charge.trial:
            left = charge.trial_capacity - window.used(now_us) - charge.cost
            if left < 0:
                return left
        window.add(now_us, charge.cost)
        if self.record_admissions:
            journal = self._journal.get(charge.key)
            if journal is None or journal.geometry != charge.geometry:
                journal = self._journal[charge.key] = SlidingWindow(charge.geometry)
            journal.add(now_us, charge.cost)
        return (charge.trial_capacity if charge.trial else charge.capacity) - window.total

    async def _peek(self, charges: tuple[Charge, ...], kind: str) -> QuotaSnapshot:
        """Read every charge's window at one instant (nothing is counted, no window is made)."""
        now = self.clock.now()
        now_us = round(now * US)
        cooldown = max(self._cooldown_until.get(ACCOUNT_WIDE, 0.0), self._cooldown_until.get(kind, 0.0))
        states = tuple(self._state(c, now_us) for c in charges)
        return QuotaSnapshot(at=now, limits=states, cooldown=max(0.0, cooldown - now))

    def _state(self, charge: Charge, now_us: int) -> LimitState:
        window = self._windows.get(charge.key)
        if window is None or window.geometry != charge.geometry:
            return limit_state(charge, 0, 0.0)
        used = window.used(now_us)
        capacity = charge.measured_capacity
        wait_us = window.retry_after_us(now_us, 1, capacity) if used + 1 > capacity else 0
        return limit_state(charge, used, wait_us / US)

    async def _set_cooldown(self, scope: str, length_s: float) -> None:
        """Hold back this process's requests of `scope` for `length_s` seconds."""
        ends = self.clock.now() + length_s
        self._cooldown_until[scope] = max(self._cooldown_until.get(scope, 0.0), ends)

    def seed(self, charge: Charge, remaining: int, reported_at: float) -> None:
        """Start the limit of `charge` (a full-capacity charge, as Redis decides it) from what Redis
        last said was left of it: `remaining` units at `reported_at` (this limiter's clock).

        Budget until the report is one period old: `min(L, floor(share * remaining))`, L being
        this replica's share of the capacity; then L per window again. Implemented by counting
        `L - budget` units in the bucket of `reported_at`: the fleet's admissions Redis counted
        then were all made by then, so they leave the window by then too. Replaces this limit's
        window (the report already counts whatever this replica admitted before it).
        """
        local_capacity = scaled_capacity(charge.capacity, self.share)
        budget = min(local_capacity, math.floor(self.share * max(0, remaining)))
        window = SlidingWindow(charge.geometry)
        if local_capacity > budget:
            window.add(round(reported_at * US), local_capacity - budget)
        self._windows[charge.key] = window

    def unwritten(self) -> list[Debit]:
        """What was admitted here and not yet written back, for the limits where it still counts."""
        now_us = round(self.clock.now() * US)
        debits = []
        for key, journal in self._journal.items():
            if journal.used(now_us) > 0:
                debits.append(Debit(key, journal.geometry, now_us, tuple(journal.buckets.items())))
        return debits

    def written(self, debits: list[Debit]) -> None:
        """`debits` are in Redis now: forget them (admissions made since stay in the journal)."""
        for debit in debits:
            journal = self._journal.get(debit.key)
            if journal is not None:
                journal.remove(debit.buckets)

    def _window(self, charge: Charge) -> SlidingWindow:
        window = self._windows.get(charge.key)
        if window is None or window.geometry != charge.geometry:
            window = self._windows[charge.key] = SlidingWindow(charge.geometry)
        return window

    @staticmethod
    def _refusal(charge: Charge, window: SlidingWindow, now_us: int) -> Refusal:
        wait: float | None = None
        if charge.cost <= charge.capacity:
            wait = window.retry_after_us(now_us, charge.cost, charge.capacity) / US
        return Refusal(charge.ref, wait, charge.capacity, charge.cost, charge.spec.period_s)

    def _maybe_sweep(self, now_us: int) -> None:
        self._since_sweep += 1
        if self._since_sweep < SWEEP_EVERY:
            return
        self._since_sweep = 0
        for windows in (self._windows, self._journal):
            for key in [k for k, w in windows.items() if w.used(now_us) == 0]:
                del windows[key]
