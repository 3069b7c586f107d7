"""Redis first; an in-process share of each limit while Redis is unreachable; back by itself.

Degraded mode keeps the fleet close to each limit, not exactly at it (the rules and the bound,
with the cases worked out: window.py, "Degraded mode"):

- Seed: every Redis decision's report of what is left of each limit (`remaining`; 0 for a limit
  that refused) is kept, with the time. On switching to local decisions, each limit with a report
  starts with budget `min(L, floor(share * remaining))`, L = this replica's local capacity
  (`max(1, floor(share * C))`), until the report is one period old; then L per window.
- Write back: every local admission is journalled; on recovery, before the first Redis decision,
  the journal is debited into Redis at the times the admissions were made (unchecked), so Redis
  counts them in every window they belong to. It is the shared health's `on_recovered` hook: a
  write-back that fails keeps Redis marked down, for every backend, and is tried again at the
  next probe (one that timed out may have been applied: then it is counted twice, which only
  errs on the safe side).

So for any window W in which Redis decided: fleet(W) <= C + the local admissions in W that were
not yet written back when Redis last decided in W; each replica contributes at most its budget
(period after its report) or L (later) to that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from gateway.clock import Clock
from gateway.ratelimit.admission import AdmissionLimiter
from gateway.ratelimit.decision import PLAN_CACHE_SIZE, Charge, Decision, Hit
from gateway.ratelimit.local_limiter import LocalRateLimiter
from gateway.ratelimit.redis_limiter import RedisRateLimiter
from gateway.ratelimit.snapshot import QuotaSnapshot
from gateway.shared_state import RedisUnavailable

log = logging.getLogger(__name__)


class FallbackRateLimiter(AdmissionLimiter):
    """Decides with `primary` (Redis) while the shared health is up, else with `fallback`.

    The health's subscription seeds the local share the moment Redis goes down, whichever
    backend noticed; its probe runs this limiter's write-back before Redis decides again.
    """

    def __init__(
        self,
        *,
        primary: RedisRateLimiter,
        fallback: LocalRateLimiter,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(settings=primary.settings, clock=clock or primary.clock)
        self.primary = primary
        self.fallback = fallback
        self.fallback.record_admissions = True
        self.health = primary.shared.health
        self.health.subscribe(self._on_health)
        self.health.on_recovered(self._write_back)
        # limit key -> (the full-capacity charge, remaining Redis reported, fallback clock then)
        self._reports: dict[str, tuple[Charge, int, float]] = {}
        self._reports_cap = PLAN_CACHE_SIZE
        self._late: set[asyncio.Future[Decision]] = set()  # Redis decisions answered locally meanwhile
        self._writing = asyncio.Lock()  # one write-back of the journal at a time
        self._catch_up: asyncio.Future[None] | None = None

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable (or this replica's write-back is pending)."""
        return self.health.down

    async def decide(self, kind: str, *, tasks: int, caller: str) -> Decision:
        """Redis's decision, or the local one while Redis is unreachable."""
        return await self._routed(
            lambda: self.primary.decide(kind, tasks=tasks, caller=caller),
            lambda: self.fallback.decide(kind, tasks=tasks, caller=caller),
            lambda: self.primary.planner.charges(kind, tasks=tasks, caller=caller),
        )

    async def decide_hits(
        self, hits: Sequence[Hit], *, shadow: frozenset[str] = frozenset(), within_s: float | None = None
    ) -> Decision:
        """Redis's decision over every hit, or the local one while Redis is unreachable.

        With `within_s`, a Redis decision that has not answered by then is not cut off (cancelling
        a command costs its connection, and a reconnect per slow decision makes a busy replica
        slower still): it finishes in the background, and the local share decides now. Redis then
        counts the request when it admits it; when it refuses it, this replica's local admissions
        are written into Redis at once, so none stays uncounted there (a request both admitted
        is counted twice once its journal is written: on the safe side).
        """
        if within_s is None or self.health.down:
            return await self._routed(
                lambda: self.primary.decide_hits(hits, shadow=shadow),
                lambda: self.fallback.decide_hits(hits, shadow=shadow),
                lambda: self.primary.planner.combined(hits, shadow),
            )
        on_redis = asyncio.ensure_future(self.primary.decide_hits(hits, shadow=shadow))
        done, _ = await asyncio.wait({on_redis}, timeout=within_s)
        if not done:
            self._late.add(on_redis)
            on_redis.add_done_callback(self._late_answer)
        elif not isinstance(on_redis.exception(), RedisUnavailable):  # the guard tripped the health
            decision = on_redis.result()
            self._note(self.primary.planner.combined(hits, shadow), decision)
            return decision
        self.stats.degraded_decisions += 1
        return await self.fallback.decide_hits(hits, shadow=shadow)

    def _late_answer(self, task: asyncio.Future[Decision]) -> None:
        self._late.discard(task)
        if task.cancelled() or task.exception() is not None:  # RedisUnavailable tripped the health
            return
        if task.result().admitted:
            return  # Redis counts it; the local admission waits in the journal for a recovery
        if self._catch_up is None or self._catch_up.done():
            self._catch_up = asyncio.ensure_future(self._write_late())

    async def _write_late(self) -> None:
        """Write the local admissions of slow decisions into Redis while it is up (see decide_hits)."""
        with contextlib.suppress(RedisUnavailable):  # then the health is down: the recovery writes them
            await self._write_journal()

    async def _routed(
        self,
        on_redis: Callable[[], Awaitable[Decision]],
        locally: Callable[[], Awaitable[Decision]],
        charges: Callable[[], tuple[Charge, ...]],
    ) -> Decision:
        if not self.health.down:
            try:
                decision = await on_redis()
            except RedisUnavailable:
                pass  # the guard tripped the health (seeded), or the caller's time ran out
            else:
                self._note(charges(), decision)
                return decision
        self.stats.degraded_decisions += 1
        return await locally()

    async def _decide(
        self, kind: str, charges: tuple[Charge, ...], *, frees: bool = False, within_s: float | None = None
    ) -> Decision:
        # Never called: decide() routes to a backend, which plans its own (scaled) charges.
        raise NotImplementedError

    async def _set_cooldown(self, scope: str, length_s: float) -> None:
        # Never called: report_throttled() routes to both backends.
        raise NotImplementedError

    async def peek(self, *, caller: str, kind: str | None = None) -> QuotaSnapshot:
        """Redis's counters, or this replica's local share of each limit while Redis is unreachable."""
        if not self.health.down:
            try:
                return await self.primary.peek(caller=caller, kind=kind)
            except RedisUnavailable:
                pass  # the guard tripped the health
        return replace(await self.fallback.peek(caller=caller, kind=kind), degraded=True)

    async def _peek(self, charges: tuple[Charge, ...], kind: str) -> QuotaSnapshot:
        # Never called: peek() routes to a backend.
        raise NotImplementedError

    async def report_throttled(self, retry_after: float, *, kind: str) -> None:
        """Share the cool-down through Redis, and keep it locally for a degraded spell."""
        await self.fallback.report_throttled(retry_after, kind=kind)
        if not self.health.down:
            with contextlib.suppress(RedisUnavailable):  # the guard tripped the health
                await self.primary.report_throttled(retry_after, kind=kind)

    async def settled(self) -> None:
        """Wait for the Redis decisions that were answered locally to finish (they are bounded by
        the shared health's timeouts)."""
        while self._late:
            await asyncio.wait(set(self._late))

    async def close(self) -> None:
        """Let late Redis decisions, and their write-back, finish (the health's probe belongs to its owner)."""
        await self.settled()
        if self._catch_up is not None:
            await self._catch_up

    async def _write_back(self) -> None:
        """The recovery hook: write this replica's local admissions into Redis; raises
        RedisUnavailable (Redis stays down) when that fails."""
        try:
            await self._write_journal()
        except RedisUnavailable as e:
            log.warning("rate limiter still degraded: writing back local admissions failed (%s)", e)
            raise
        log.warning("rate limiter recovered: local admissions written back")

    async def _write_journal(self) -> None:
        async with self._writing:
            while debits := self.fallback.unwritten():
                await self.primary.write_back(debits)
                # Admissions made while that write was under way are written by the next turn;
                # nothing awaits between the empty journal and the switch back to Redis.
                self.fallback.written(debits)
            self._reports.clear()  # reports from before the write-back no longer count what it added

    def _note(self, charges: tuple[Charge, ...], decision: Decision) -> None:
        """Keep what Redis said is left of each limit (the seed of a degraded spell)."""
        at = self.fallback.clock.now()
        if decision.admitted:
            for charge, (_, remaining) in zip(charges, decision.remaining, strict=True):
                if not charge.shadow:  # a shadow limit's remaining says nothing of the real one
                    self._reports[charge.key] = (charge, remaining, at)
        else:
            for refusal in decision.refusals:
                if refusal.limit is None or refusal.retry_after is None:
                    continue  # the cool-down, or a cost over the whole capacity: says nothing
                for charge in charges:
                    if charge.ref == refusal.limit and not charge.shadow:
                        self._reports[charge.key] = (charge, 0, at)  # less than its cost is left
        if len(self._reports) > self._reports_cap:  # bounded: callers are open-ended
            self._reports = {
                key: report
                for key, report in self._reports.items()
                if at - report[2] <= report[0].spec.period_s  # older ones have left their window
            }
            self._reports_cap = max(PLAN_CACHE_SIZE, 2 * len(self._reports))

    def _on_health(self, down: bool) -> None:
        if not down:
            return
        self.stats.degraded_episodes += 1
        for charge, remaining, at in self._reports.values():
            self.fallback.seed(charge, remaining, at)
        log.warning(
            "rate limiter degraded: redis unreachable; local share decides, seeded from %d limits",
            len(self._reports),
        )
