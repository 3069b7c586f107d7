"""When to poll next: exponential backoff with jitter, reset when the operation moves."""

from __future__ import annotations

import random

from gateway.settings import PollerSettings


class PollSchedule:
    """Intervals initial, initial*m, initial*m^2 ... capped at max, each jittered by ±jitter.

    `next(changed=True)` starts over from the initial interval: an operation that just moved
    is likely to move again soon, while a quiet one is polled less and less often.
    """

    def __init__(self, *, settings: PollerSettings, rng: random.Random) -> None:
        self._settings = settings
        self._rng = rng
        self._base = settings.initial_interval_s

    def first(self) -> float:
        """The delay before the first poll of a loop."""
        self._base = self._settings.initial_interval_s
        return self._jittered(self._base)

    def next(self, *, changed: bool) -> float:
        """The delay after a poll; `changed` says whether status or progress moved."""
        s = self._settings
        self._base = s.initial_interval_s if changed else min(self._base * s.multiplier, s.max_interval_s)
        return self._jittered(self._base)

    def _jittered(self, base: float) -> float:
        spread = self._settings.jitter * (2.0 * self._rng.random() - 1.0)
        return max(0.0, base * (1.0 + spread))
