"""What one admission decision checks (charges) and what it answers (a Decision)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from gateway.limit_spec import LimitSpec
from gateway.ratelimit.window import Geometry
from gateway.request_kinds import KIND_CREATE_TASKS, KIND_UPDATE_POOL_OVERLAP
from gateway.settings import RateLimitSettings

COOLDOWN_SUBJECT = "toloka"
PLAN_CACHE_SIZE = 4096
# The capacity a shadow limit is decided with: it never refuses, but counts what is admitted, and
# what it would have done is read off the `remaining` it reports (`would_refuse`).
# Two kinds of shadow charge share it:
# - a limit named in `[rls] shadow_limits` is shadow for the rate-limit service only, and enforced
#   for the gateway's own calls in the same window: that window counts every request sent (the mesh's
#   included), as the enforcing side must;
# - a limit with `shadow = true` (a "trial": shadow on every path, nothing enforces it) counts only
#   the requests it would have admitted, so its window, what it reports and its shadow refusals are
#   those the limit would have had if it were enforced (a request it would have refused is sent, but
#   not counted in it). The backends decide such a charge against `trial_capacity`.
SHADOW_CAPACITY = 2**50

# Cool-downs after a Toloka 429 (see `cooldown_scope`). A 429 pauses at most this long, whatever
# Retry-After says: long enough for the pauses Toloka asks for in practice (seconds), short enough
# that a huge or hostile value (3600, 1e9) cannot stop the gateway for long. When it ends, the next
# request probes Toloka, and a new 429 starts a new (capped) cool-down.
MAX_COOLDOWN_S = 60.0
# Kinds Toloka limits on their own (task creation per minute/day, overlap changes per hour): a 429
# on one of them most likely means that limit, so only requests of that kind pause. A 429 on any
# other kind can only be the account-wide limit (300 requests/s), so everything pauses. A 429 cannot
# be told apart reliably; when a scoped 429 was in fact account-wide, the other kinds get their own
# 429 at once, which then pauses everything.
KINDS_WITH_OWN_TOLOKA_LIMIT = frozenset({KIND_CREATE_TASKS, KIND_UPDATE_POOL_OVERLAP})
ACCOUNT_WIDE = ""  # the cool-down scope every kind honours


@dataclass(frozen=True)
class LimitRef:
    """Names one limit: global, or a caller's own quota."""

    name: str
    caller: str | None = None

    @property
    def subject(self) -> str:
        """The QuotaFailure subject: the limit name, with the caller for quotas."""
        return self.name if self.caller is None else f"caller:{self.caller}/{self.name}"

    @property
    def stats_label(self) -> str:
        """A bounded-cardinality label for counters (callers are not part of it)."""
        return f"global/{self.name}" if self.caller is None else f"caller/{self.name}"


@dataclass(frozen=True)
class Hit:
    """One request of a decision that may hold several (the rate-limit service's descriptors):
    its kind, its task count (the cost of task-counted limits) and, optionally, the caller whose
    quota applies too."""

    kind: str
    tasks: int = 1
    caller: str | None = None


@dataclass(frozen=True)
class Charge:
    """One limit a request is checked and debited against."""

    ref: LimitRef
    spec: LimitSpec
    capacity: int
    cost: int
    geometry: Geometry
    key: str  # where the counters live (Redis key; also the in-process map key)
    # A trial (a limit with `shadow = true`): the capacity it is decided against, never refusing
    # (its own, or this process's share of it); 0 for any other charge.
    trial_capacity: int = 0

    @property
    def shadow(self) -> bool:
        """True for a limit decided in shadow mode (it never refuses)."""
        return self.capacity >= SHADOW_CAPACITY

    @property
    def trial(self) -> bool:
        """True for a shadow limit whose window counts only what it would have admitted."""
        return self.trial_capacity > 0

    @property
    def measured_capacity(self) -> int:
        """The capacity the limit is measured against: its own for a shadow charge."""
        if self.trial:
            return self.trial_capacity
        return self.spec.capacity if self.shadow else self.capacity

    @property
    def script_capacity(self) -> int:
        """The capacity a backend decides with; negative for a trial (admit always, count if it fits)."""
        return -self.trial_capacity if self.trial else self.capacity

    def would_refuse(self, remaining: int) -> bool:
        """For a shadow charge that admitted with `remaining` left: would the limit have refused?"""
        return self.left(remaining) < 0

    def left(self, remaining: int) -> int:
        """What is left of the limit itself, given the `remaining` a decision reported for this
        charge (for a shadow charge, negative when the limit would have refused). A trial's
        `remaining` is already that: negative when the request did not fit (and was not counted)."""
        if self.shadow and not self.trial:
            return self.spec.capacity - (SHADOW_CAPACITY - remaining)
        return remaining


@dataclass(frozen=True)
class Refusal:
    """Why a decision refused: a limit (or the Toloka cool-down when `limit` is None)."""

    limit: LimitRef | None
    retry_after: float | None  # None: the request costs more than the whole capacity
    capacity: int = 0
    cost: int = 0
    period_s: float = 0.0


@dataclass(frozen=True)
class Decision:
    """The answer of one round trip: admitted (and debited everywhere) or refused (nowhere)."""

    admitted: bool
    at: float  # the deciding clock, in seconds (Redis TIME for the Redis backend)
    remaining: tuple[tuple[LimitRef, int], ...] = ()
    refusals: tuple[Refusal, ...] = ()
    backend: str = "local"  # which store decided: "redis" or "local"
    # When asked for (`decide_hits`): per `remaining` entry, seconds until that limit's sliding
    # window frees its next unit (the oldest counted bucket leaves it).
    frees_in: tuple[float, ...] = ()
    # Per shadow limit of an admitted request: what is left of the limit itself (negative: it
    # would have refused). Its `remaining` entry is counted against SHADOW_CAPACITY.
    shadow_left: tuple[tuple[LimitRef, int], ...] = ()

    @property
    def shadow_refusals(self) -> tuple[LimitRef, ...]:
        """The shadow limits that would have refused this (admitted) request."""
        return tuple(ref for ref, left in self.shadow_left if left < 0)

    @property
    def retry_after(self) -> float | None:
        """Seconds until every refusing limit has room, or None when one never will."""
        waits = [r.retry_after for r in self.refusals]
        if any(w is None for w in waits):
            return None
        return max((w for w in waits if w is not None), default=0.0)


def limit_key(prefix: str, spec: LimitSpec, caller: str | None) -> str:
    """The Redis key of one limit, inside the `{prefix}` hash tag so every key of a decision
    shares one Cluster slot. The period is part of it: a changed period never reads buckets of
    another width."""
    period_ms = round(spec.period_s * 1000)
    name = quote(spec.name, safe="")
    if caller is None:
        return f"{{{prefix}}}:rl:g:{name}:{period_ms}"
    return f"{{{prefix}}}:rl:c:{quote(caller, safe='')}:{name}:{period_ms}"


def cooldown_scope(kind: str) -> str:
    """Which cool-down a 429 on a request of `kind` starts: its own kind's, or ACCOUNT_WIDE."""
    return kind if kind in KINDS_WITH_OWN_TOLOKA_LIMIT else ACCOUNT_WIDE


def hits_cooldown_kind(hits: Sequence[Hit]) -> str:
    """The kind whose own cool-down a decision over `hits` honours besides the account-wide one:
    the first hit's kind that Toloka limits on its own, else none (ACCOUNT_WIDE)."""
    return next((h.kind for h in hits if h.kind in KINDS_WITH_OWN_TOLOKA_LIMIT), ACCOUNT_WIDE)


def cooldown_length(retry_after: float) -> float | None:
    """The cool-down a reported Retry-After starts: capped at MAX_COOLDOWN_S; None (no cool-down)
    for a value that is not a finite, non-negative number of seconds."""
    if not math.isfinite(retry_after) or retry_after < 0:
        return None
    return min(retry_after, MAX_COOLDOWN_S)


def cooldown_key(prefix: str, scope: str = ACCOUNT_WIDE) -> str:
    """The Redis key of one Toloka cool-down (same hash tag as the limits): the account-wide one,
    or the one of a kind with its own Toloka limit."""
    if scope == ACCOUNT_WIDE:
        return f"{{{prefix}}}:rl:cooldown"
    return f"{{{prefix}}}:rl:cooldown:{quote(scope, safe='')}"


def scaled_capacity(capacity: int, share: float) -> int:
    """This process's part of a limit (at least 1, so degraded mode never stops everything)."""
    return capacity if share >= 1.0 else max(1, math.floor(capacity * share))


class ChargePlanner:
    """Turns (kind, tasks, caller) into the charges of one decision; caches geometry."""

    def __init__(self, *, settings: RateLimitSettings, share: float = 1.0) -> None:
        self._settings = settings
        self._share = share
        self._geometry: dict[float, Geometry] = {}
        self._cache: dict[tuple[str, int, str], tuple[Charge, ...]] = {}
        self._hit_cache: dict[tuple[Hit, frozenset[str]], tuple[Charge, ...]] = {}

    def _charge(self, spec: LimitSpec, tasks: int, caller: str | None, shadow: bool = False) -> Charge:
        shadow = shadow or spec.shadow
        geometry = self._geometry.get(spec.period_s)
        if geometry is None:
            geometry = self._geometry[spec.period_s] = Geometry.for_period(spec.period_s)
        return Charge(
            key=limit_key(self._settings.key_prefix, spec, caller),
            ref=LimitRef(spec.name, caller),
            spec=spec,
            capacity=SHADOW_CAPACITY if shadow else scaled_capacity(spec.capacity, self._share),
            cost=spec.cost(tasks),
            geometry=geometry,
            trial_capacity=scaled_capacity(spec.capacity, self._share) if spec.shadow else 0,
        )

    def charges(self, kind: str, *, tasks: int, caller: str) -> tuple[Charge, ...]:
        """Every global limit and every limit of the caller's quota that counts `kind`."""
        cache_key = (kind, tasks, caller)
        found = self._cache.get(cache_key)
        if found is None:
            if len(self._cache) >= PLAN_CACHE_SIZE:
                self._cache.clear()  # bounded: callers and task counts are open-ended
            found = self._cache[cache_key] = self._plan(kind, tasks, caller)
        return found

    def _plan(self, kind: str, tasks: int, caller: str) -> tuple[Charge, ...]:
        found = [self._charge(s, tasks, None) for s in self._settings.limits if s.applies_to(kind)]
        found += [
            self._charge(s, tasks, caller) for s in self._settings.quota_for(caller) if s.applies_to(kind)
        ]
        return tuple(found)

    def quota_charges(self, caller: str, kind: str | None = None) -> tuple[Charge, ...]:
        """The limits that apply to `caller` (global ones first), or only those that count `kind`;
        each charged as a request of one task."""
        found = [
            self._charge(s, 1, c)
            for c, specs in ((None, self._settings.limits), (caller, self._settings.quota_for(caller)))
            for s in specs
            if kind is None or s.applies_to(kind)
        ]
        return tuple(found)

    def hit_charges(self, hit: Hit, shadow: frozenset[str] = frozenset()) -> tuple[Charge, ...]:
        """The global limits that count `hit.kind` and, when it names a caller, that caller's
        quota's; limits named in `shadow`, and shadow limits, are decided with SHADOW_CAPACITY."""
        cache_key = (hit, shadow)
        found = self._hit_cache.get(cache_key)
        if found is None:
            if len(self._hit_cache) >= PLAN_CACHE_SIZE:
                self._hit_cache.clear()
            specs: list[tuple[LimitSpec, str | None]] = [
                (s, None) for s in self._settings.limits if s.applies_to(hit.kind)
            ]
            if hit.caller is not None:
                quota = self._settings.quota_for(hit.caller)
                specs += [(s, hit.caller) for s in quota if s.applies_to(hit.kind)]
            found = tuple(self._charge(s, hit.tasks, c, s.name in shadow) for s, c in specs)
            self._hit_cache[cache_key] = found
        return found

    def combined(self, hits: Sequence[Hit], shadow: frozenset[str] = frozenset()) -> tuple[Charge, ...]:
        """The charges of several hits decided together: a limit several of them reach is charged
        once, at the largest of their costs (they are one request seen through several
        descriptors, not several requests)."""
        by_key: dict[str, Charge] = {}
        for hit in hits:
            for charge in self.hit_charges(hit, shadow):
                held = by_key.get(charge.key)
                if held is None or charge.cost > held.cost:
                    by_key[charge.key] = charge
        return tuple(by_key.values())
