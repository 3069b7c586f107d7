"""Redis first; an in-process share of each limit while Redis is unreachable; back by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.ratelimit.admission import AdmissionLimiter, BackendUnavailable
from gateway.ratelimit.clock import Clock
from gateway.ratelimit.decision import Charge, Decision
from gateway.ratelimit.local_limiter import LocalRateLimiter
from gateway.ratelimit.redis_limiter import RedisRateLimiter

log = logging.getLogger(__name__)


class FallbackRateLimiter(AdmissionLimiter):
    """Decides with `primary` (Redis); on BackendUnavailable switches to `fallback` (local share).

    While degraded, a background task PINGs Redis every `probe_interval_s` (never the hot
    path); the first answer switches decisions back to Redis.
    """

    def __init__(
        self,
        *,
        primary: RedisRateLimiter,
        fallback: LocalRateLimiter,
        clock: Clock | None = None,
        probe_interval_s: float = 1.0,
    ) -> None:
        super().__init__(settings=primary.settings, clock=clock or primary.clock)
        self.primary = primary
        self.fallback = fallback
        self._probe_interval_s = probe_interval_s
        self._degraded = False
        self._probe: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and the local share decides."""
        return self._degraded

    async def decide(self, kind: str, *, tasks: int, caller: str) -> Decision:
        """Redis's decision, or the local one while Redis is unreachable."""
        if not self._degraded:
            try:
                return await self.primary.decide(kind, tasks=tasks, caller=caller)
            except BackendUnavailable as e:
                self._enter_degraded(e)
        self.stats.degraded_decisions += 1
        return await self.fallback.decide(kind, tasks=tasks, caller=caller)

    async def _decide(self, charges: tuple[Charge, ...]) -> Decision:
        # Never called: decide() routes to a backend, which plans its own (scaled) charges.
        raise NotImplementedError

    async def report_throttled(self, retry_after: float) -> None:
        """Share the cool-down through Redis, and keep it locally for a degraded spell."""
        await self.fallback.report_throttled(retry_after)
        if self._degraded:
            return
        try:
            await self.primary.report_throttled(retry_after)
        except BackendUnavailable as e:
            self._enter_degraded(e)

    async def close(self) -> None:
        """Stop the probe."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None

    def _enter_degraded(self, cause: BaseException) -> None:
        if self._degraded:
            return
        self._degraded = True
        self.stats.degraded_episodes += 1
        log.warning("rate limiter degraded: redis unreachable (%s); local share decides", cause)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_back(), name="ratelimit-redis-probe")

    async def _probe_until_back(self) -> None:
        while True:
            await self.clock.sleep(self._probe_interval_s)
            try:
                await self.primary.ping()
            except BackendUnavailable:
                continue
            # Connections that were idle when Redis died still look open; reusing one would
            # fail once more and degrade again.
            await self.primary.drop_idle_connections()
            self._degraded = False
            log.warning("rate limiter recovered: redis answers again")
            return
