"""Fleet-wide limiter: one Lua script per decision, on Redis's clock, in one Cluster slot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.ratelimit.admission import AdmissionLimiter
from gateway.ratelimit.decision import ACCOUNT_WIDE, Charge, Decision, Refusal, cooldown_key
from gateway.ratelimit.snapshot import QuotaSnapshot, limit_state
from gateway.ratelimit.window import US, Debit
from gateway.settings import RateLimitSettings
from gateway.shared_state import LuaScript, SharedRedis

ACQUIRE_LUA = files("gateway.ratelimit").joinpath("acquire.lua").read_text()
COOLDOWN_LUA = files("gateway.ratelimit").joinpath("cooldown.lua").read_text()


class RedisRateLimiter(AdmissionLimiter):
    """Counters in Redis, shared by every replica; raises RedisUnavailable when Redis is gone.

    Every decision is one script, bounded by the shared health (a fault trips it for every
    backend on the client).

    `server_time` is for tests only: a function whose seconds the scripts use instead of Redis
    TIME, so the contract suite can drive both backends with one manual clock.
    """

    def __init__(
        self,
        *,
        shared: SharedRedis,
        settings: RateLimitSettings,
        clock: Clock = SYSTEM_CLOCK,
        server_time: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(settings=settings, clock=clock)
        self.shared = shared
        self._server_time = server_time
        self._cooldown_keys: dict[str, str] = {}
        self._acquire_script = shared.script(ACQUIRE_LUA)
        self._cooldown_script = shared.script(COOLDOWN_LUA)

    async def _decide(
        self, kind: str, charges: tuple[Charge, ...], *, frees: bool = False, within_s: float | None = None
    ) -> Decision:
        """One EVALSHA: check the cool-downs of `kind` and every charge, debit all or none."""
        keys = [self._cooldown(ACCOUNT_WIDE), self._cooldown(kind), *(c.key for c in charges)]
        args: list[int | str] = [self._time_override(), len(charges)]
        for c in charges:
            args += [c.script_capacity, c.cost, c.geometry.width_us, c.geometry.span]
        if frees:
            args.append(1)
        reply = await self._run(self._acquire_script, keys, args, within_s)
        return _parse(reply, charges)

    async def _set_cooldown(self, scope: str, length_s: float) -> None:
        """Extend the shared cool-down of `scope` that every replica's `decide` honours."""
        length_us = max(0, round(length_s * US))
        await self._run(self._cooldown_script, [self._cooldown(scope)], [length_us, self._time_override()])

    async def _peek(self, charges: tuple[Charge, ...], kind: str) -> QuotaSnapshot:
        """One EVALSHA in acquire.lua's peek mode: every charge's window and the cool-downs of
        `kind` read, nothing changed."""
        keys = [self._cooldown(ACCOUNT_WIDE), self._cooldown(kind), *(c.key for c in charges)]
        args: list[int | str] = [self._time_override(), "peek", len(charges)]
        for c in charges:
            args += [c.measured_capacity, c.geometry.width_us, c.geometry.span]
        reply = await self._run(self._acquire_script, keys, args)
        pairs = zip(charges, reply[2::2], reply[3::2], strict=True)
        states = tuple(limit_state(c, int(used), int(wait) / US) for c, used, wait in pairs)
        return QuotaSnapshot(
            at=int(reply[0]) / US, limits=states, backend="redis", cooldown=int(reply[1]) / US
        )

    async def write_back(self, debits: list[Debit]) -> None:
        """Debit units admitted without Redis into the limits' buckets of the times they were
        admitted, unchecked (acquire.lua's debit mode). One round trip, run by the recovery hook
        while the shared health is still down (so bounded by `recovering`); raises RedisUnavailable."""
        if not debits:
            return
        keys = [self._cooldown(ACCOUNT_WIDE), self._cooldown(ACCOUNT_WIDE), *(d.key for d in debits)]
        args: list[int | str] = [self._time_override(), "debit", len(debits)]
        for d in debits:
            ages = d.ages_us()
            args += [d.geometry.width_us, d.geometry.span, len(ages)]
            for age_us, units in ages:
                args += [age_us, units]
        async with self.shared.health.recovering():
            await self._acquire_script(keys, args)

    def _cooldown(self, scope: str) -> str:
        key = self._cooldown_keys.get(scope)
        if key is None:
            key = self._cooldown_keys[scope] = cooldown_key(self.settings.key_prefix, scope)
        return key

    def _time_override(self) -> str:
        return "" if self._server_time is None else str(round(self._server_time() * US))

    async def _run(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[int | str],
        within_s: float | None = None,
    ) -> Any:
        async with self.shared.health.guard(within_s=within_s):
            return await script(keys, args)


def _parse(reply: list[int], charges: tuple[Charge, ...]) -> Decision:
    at = int(reply[1]) / US
    if int(reply[0]) == 1:
        n = len(charges)
        remaining = tuple((c.ref, int(r)) for c, r in zip(charges, reply[2 : 2 + n], strict=True))
        frees_in = tuple(int(f) / US for f in reply[2 + n :])
        return Decision(True, at, remaining=remaining, backend="redis", frees_in=frees_in)
    refusals = []
    for index, wait_us in zip(reply[2::2], reply[3::2], strict=True):
        wait = None if int(wait_us) < 0 else int(wait_us) / US
        if int(index) == 0:
            refusals.append(Refusal(None, wait))
            continue
        c = charges[int(index) - 1]
        refusals.append(Refusal(c.ref, wait, c.capacity, c.cost, c.spec.period_s))
    return Decision(False, at, refusals=tuple(refusals), backend="redis")
