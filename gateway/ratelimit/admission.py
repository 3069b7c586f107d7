"""The waiting loop every backend shares: decide, wait for capacity within bounds, or refuse.

A backend supplies `_decide()` (one atomic check-and-debit) and `_set_cooldown()`; this class
turns refusals into bounded waits and, past the caller's deadline or the maximum wait, into
`errors.RateLimited` carrying retry_after and one QuotaViolation per refusing limit.

Toloka 429s (`report_throttled`): the cool-down is scoped by `decision.cooldown_scope` (the
request's own kind when Toloka limits that kind on its own, else account-wide), capped at
`decision.MAX_COOLDOWN_S`, and a Retry-After that is not finite and non-negative is ignored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace

from gateway.call import Call
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import QuotaViolation, RateLimited
from gateway.ratelimit.decision import (
    ACCOUNT_WIDE,
    COOLDOWN_SUBJECT,
    Charge,
    ChargePlanner,
    Decision,
    Hit,
    Refusal,
    cooldown_length,
    cooldown_scope,
    hits_cooldown_kind,
)
from gateway.ratelimit.snapshot import QuotaSnapshot
from gateway.ratelimit.stats import LimiterStats
from gateway.settings import RateLimitSettings

# Wake a little after the bucket leaves, so a clock read a hair early does not refuse again.
WAKE_MARGIN_S = 0.001


class AdmissionLimiter(ABC):
    """A RateLimiter built on one atomic `decide()`; subclasses choose where counters live."""

    def __init__(
        self, *, settings: RateLimitSettings, clock: Clock = SYSTEM_CLOCK, share: float = 1.0
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.planner = ChargePlanner(settings=settings, share=share)
        self.stats = LimiterStats()

    async def decide(self, kind: str, *, tasks: int, caller: str) -> Decision:
        """One decision for one request: check every limit and the cool-down, debit all or none."""
        charges = self.planner.charges(kind, tasks=tasks, caller=caller)
        return _with_shadow(await self._decide(kind, charges), charges)

    async def decide_hits(
        self, hits: Sequence[Hit], *, shadow: frozenset[str] = frozenset(), within_s: float | None = None
    ) -> Decision:
        """One decision for several hits together (`ChargePlanner.combined`): admitted and debited
        for all of them, or for none. Limits named in `shadow` never refuse. The decision also
        says when each limit frees its next unit (`Decision.frees_in`). Never waits; `within_s`
        bounds a shared store's round trip (RedisUnavailable past it)."""
        charges = self.planner.combined(hits, shadow)
        decision = await self._decide(hits_cooldown_kind(hits), charges, frees=True, within_s=within_s)
        return _with_shadow(decision, charges)

    async def peek(self, *, caller: str, kind: str | None = None) -> QuotaSnapshot:
        """Every limit that applies to `caller` (or only those that count `kind`) as of now:
        what is left and when the next unit frees, and the Toloka cool-down `kind` honours (the
        account-wide one without `kind`). Debits nothing; one round trip."""
        return await self._peek(self.planner.quota_charges(caller, kind), kind or ACCOUNT_WIDE)

    @abstractmethod
    async def _peek(self, charges: tuple[Charge, ...], kind: str) -> QuotaSnapshot:
        """Read every charge's window (cost 1) and the cool-downs `kind` honours, changing nothing."""

    @abstractmethod
    async def _decide(
        self, kind: str, charges: tuple[Charge, ...], *, frees: bool = False, within_s: float | None = None
    ) -> Decision:
        """Check every charge and the cool-downs `kind` honours (its own and the account-wide
        one); debit all of the charges or none. Never waits. With `frees`, an admitting decision
        also says when each limit frees its next unit; `within_s` bounds a round trip."""

    async def report_throttled(self, retry_after: float, *, kind: str) -> None:
        """Toloka answered 429 to a request of `kind`: hold back the requests of its cool-down
        scope (`decision.cooldown_scope`) for `retry_after` seconds, capped at MAX_COOLDOWN_S.
        A value that is not finite and non-negative is ignored. Never shortens a cool-down."""
        length = cooldown_length(retry_after)
        if length is None or length == 0:
            return
        await self._set_cooldown(cooldown_scope(kind), length)

    @abstractmethod
    async def _set_cooldown(self, scope: str, length_s: float) -> None:
        """Extend the cool-down of `scope` to end `length_s` from now (never shorten it)."""

    @property
    def degraded(self) -> bool:
        """False: a single backend is never a fallback."""
        return False

    async def close(self) -> None:
        """Nothing to release by default."""
        return None

    async def acquire(self, kind: str, *, tasks: int, call: Call) -> None:
        """Admit one request, waiting for capacity within the deadline and maximum wait."""
        await self.admit(kind, tasks=tasks, call=call)

    async def admit(self, kind: str, *, tasks: int, call: Call) -> Decision:
        """Like `acquire`, but return the admitting decision (its time and remaining budgets)."""
        start = self.clock.now()
        give_up_at = start + self.settings.max_wait_s
        if call.deadline is not None:
            give_up_at = min(give_up_at, call.deadline)
        waited = False
        while True:
            decision = await self.decide(kind, tasks=tasks, caller=call.caller)
            self.stats.decisions += 1
            self.record(decision, kind)
            if decision.admitted:
                for ref, _ in decision.remaining:
                    self.stats.admitted[ref.stats_label] += 1
                for ref in decision.shadow_refusals:
                    if ref.name not in call.shadow_refusals:
                        call.shadow_refusals.append(ref.name)
                return decision
            retry_after = decision.retry_after
            now = self.clock.now()
            if retry_after is None or now + retry_after > give_up_at or now >= give_up_at:
                raise self._refuse(decision, retry_after)
            if not waited:
                waited = True
                for refusal in decision.refusals:
                    self.stats.waited[_label(refusal)] += 1
            await self.clock.sleep(min(retry_after + WAKE_MARGIN_S, max(0.0, give_up_at - now)))

    def record(self, decision: Decision, kind: str) -> None:
        """Keep what a decision on a request of `kind` says of the global limits (what is left:
        0 for one that refused, unless the cost can never fit) and count the shadow limits that
        would have refused it."""
        remaining = self.stats.remaining
        if decision.admitted:
            shadow = dict(decision.shadow_left) if decision.shadow_left else {}
            for ref, left in decision.remaining:
                if ref.caller is None:
                    remaining[ref.stats_label] = max(0, shadow[ref]) if ref in shadow else left
            for ref in decision.shadow_refusals:
                self.stats.shadow_refused[ref.stats_label, kind] += 1
            return
        for refusal in decision.refusals:
            if refusal.limit is not None and refusal.limit.caller is None and refusal.retry_after is not None:
                remaining[refusal.limit.stats_label] = 0  # less than the cost is left

    def _refuse(self, decision: Decision, retry_after: float | None) -> RateLimited:
        for refusal in decision.refusals:
            self.stats.refused[_label(refusal)] += 1
        quota = [QuotaViolation(subject=_subject(r), description=_describe(r)) for r in decision.refusals]
        first = decision.refusals[0]
        metadata = {"limit": ",".join(_subject(r) for r in decision.refusals)}
        if first.limit is not None and first.limit.caller is not None:
            metadata["caller"] = first.limit.caller
        when = "never fits" if retry_after is None else f"retry after {retry_after:.3f}s"
        return RateLimited(
            f"rate limit {metadata['limit']} exceeded; {when}",
            quota=quota,
            metadata=metadata,
            retry_after=retry_after,
        )


def _with_shadow(decision: Decision, charges: tuple[Charge, ...]) -> Decision:
    """`decision` with what is left of each shadow limit, when it admitted a request that has any."""
    if not decision.admitted or not any(c.shadow for c in charges):
        return decision
    pairs = zip(charges, decision.remaining, strict=True)
    left = tuple((c.ref, c.left(remaining)) for c, (_, remaining) in pairs if c.shadow)
    return replace(decision, shadow_left=left)


def _label(refusal: Refusal) -> str:
    return "cooldown" if refusal.limit is None else refusal.limit.stats_label


def _subject(refusal: Refusal) -> str:
    return COOLDOWN_SUBJECT if refusal.limit is None else refusal.limit.subject


def _describe(refusal: Refusal) -> str:
    if refusal.limit is None:
        return (
            "Toloka answered 429 Too Many Requests; every replica holds back requests of this kind "
            "(of every kind, when the limit hit is account-wide) until the cool-down ends"
        )
    if refusal.retry_after is None:
        return f"a request costing {refusal.cost} can never fit in {refusal.limit.name} ({refusal.capacity})"
    return (
        f"{refusal.limit.name} allows {refusal.capacity} per {refusal.period_s:g}s sliding window; "
        f"no room for {refusal.cost} more"
    )
