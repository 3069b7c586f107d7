"""In-process limiter: one replica's counters, the same sliding-window rule as Redis."""

from __future__ import annotations

from gateway.ratelimit.admission import AdmissionLimiter
from gateway.ratelimit.clock import Clock
from gateway.ratelimit.decision import Charge, Decision, Refusal
from gateway.ratelimit.window import US, SlidingWindow
from gateway.settings import RateLimitSettings

# Drop idle windows (e.g. of callers gone quiet) every this many decisions, so memory follows
# the callers active within one period rather than every caller ever seen.
SWEEP_EVERY = 1024


class LocalRateLimiter(AdmissionLimiter):
    """Holds `share` of every limit in this process: alone (no Redis) or as the degraded fallback."""

    def __init__(
        self, *, settings: RateLimitSettings, clock: Clock | None = None, share: float = 1.0
    ) -> None:
        super().__init__(settings=settings, clock=clock, share=share)
        self._windows: dict[str, SlidingWindow] = {}
        self._cooldown_until = 0.0
        self._since_sweep = 0

    async def _decide(self, charges: tuple[Charge, ...]) -> Decision:
        """Check and debit every charge at once; nothing awaits in between, so it is atomic."""
        now = self.clock.now()
        now_us = round(now * US)
        if now < self._cooldown_until:
            return Decision(False, now, refusals=(Refusal(None, self._cooldown_until - now),))
        windows = [self._window(c) for c in charges]
        refusals = tuple(
            self._refusal(c, w, now_us)
            for c, w in zip(charges, windows, strict=True)
            if w.used(now_us) + c.cost > c.capacity
        )
        if refusals:
            return Decision(False, now, refusals=refusals)
        for charge, window in zip(charges, windows, strict=True):
            window.add(now_us, charge.cost)
        self._maybe_sweep(now_us)
        remaining = tuple((c.ref, c.capacity - w.total) for c, w in zip(charges, windows, strict=True))
        return Decision(True, now, remaining=remaining)

    async def report_throttled(self, retry_after: float) -> None:
        """Hold back this process's callers for `retry_after` seconds."""
        self._cooldown_until = max(self._cooldown_until, self.clock.now() + max(0.0, retry_after))

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
        for key in [k for k, w in self._windows.items() if w.used(now_us) == 0]:
            del self._windows[key]
