"""Whether the shared Redis answers: one `RedisHealth` per client, built by the composition root.

Every shared-state backend bounds its round trips with `guard()`, so the first one to see Redis
fail trips the health for all of them: none touches Redis again, or pays its timeout, until the
one background probe gets an answer. Components that must act on a change subscribe to it
(metrics, the gRPC health service, the limiter's seeding); recovery work that must be done
before Redis is used again (the limiter's write-back of its local admissions) is an
`on_recovered` hook the probe runs first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.shared_state.client import (
    REDIS_UNREACHABLE,
    AnyRedis,
    RedisUnavailable,
    cancel_and_wait,
    drop_idle_connections,
)

# One shared-state round trip takes milliseconds. When calls are waiting and none has got an answer
# for OP_TIMEOUT_S of time in which the event loop was free to take one, the server is gone or hung.
# Otherwise Redis (or this process) is only busy, and a call may wait up to BUSY_TIMEOUT_S.
OP_TIMEOUT_S = 0.5
BUSY_TIMEOUT_S = 2.0
PROBE_INTERVAL_S = 1.0
_TICK_S = 0.05

log = logging.getLogger(__name__)

OnChange = Callable[[bool], None]
OnRecovered = Callable[[], Awaitable[None]]


class RedisHealth:
    """Tripped by any layer's fault, cleared by one background probe, watched by subscribers.

    `clock` paces the probe; the silence watch and the cut-offs run on the event loop's timer,
    as they bound real round trips.
    """

    def __init__(
        self,
        redis: AnyRedis,
        *,
        op_timeout_s: float = OP_TIMEOUT_S,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        probe_interval_s: float = PROBE_INTERVAL_S,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._redis = redis
        self.op_timeout_s = op_timeout_s
        self.busy_timeout_s = max(busy_timeout_s, op_timeout_s)
        self._waiting: set[asyncio.Timeout] = set()
        self._silence_s = 0.0
        self._monitor: asyncio.TimerHandle | None = None
        self._probe_interval_s = probe_interval_s
        self._clock = clock
        self._down = False
        self._probe: asyncio.Task[None] | None = None
        self._subscribers: list[OnChange] = []
        self._recovery_hooks: list[OnRecovered] = []
        self.trips = 0

    @property
    def down(self) -> bool:
        """True from the first fault until a probe gets an answer and every recovery hook ran."""
        return self._down

    def subscribe(self, on_change: OnChange) -> None:
        """Call `on_change(down)` at every change, synchronously, in the order subscribed."""
        self._subscribers.append(on_change)

    def on_recovered(self, hook: OnRecovered) -> None:
        """Run `hook` after a probe's answer and before Redis is used again; if it raises
        RedisUnavailable, Redis stays down and the next probe tries again. Its round trips go
        through `recovering()`, as `guard()` refuses everything while Redis is down."""
        self._recovery_hooks.append(hook)

    @contextlib.asynccontextmanager
    async def guard(self, *, within_s: float | None = None) -> AsyncIterator[None]:
        """Bound a block of Redis calls; a fault, or silence from Redis, trips the health.

        Every waiting block is cut off once Redis has been silent (see `_watch`) for
        `op_timeout_s`: a hung or vanished server. A busy Redis (or a congested event loop)
        gets up to `busy_timeout_s`; `within_s` (the caller's time left) caps both. Raises
        RedisUnavailable: at once while Redis is down, and after a fault or a cut-off. Running
        out of the caller's own time is not a Redis fault and does not trip the health.
        """
        if self._down:
            raise RedisUnavailable("Redis is unreachable; not asked until a probe answers")
        loop = asyncio.get_running_loop()
        cap = self.busy_timeout_s if within_s is None else max(0.0, min(self.busy_timeout_s, within_s))
        try:
            async with asyncio.timeout(cap) as scope:
                self._waiting.add(scope)
                if self._monitor is None:
                    # Silence is not reset here, only by an answer: calls cut short by their own
                    # deadlines, one after another, still add up to a hung server.
                    self._monitor = loop.call_at(loop.time() + _TICK_S, self._watch, loop.time() + _TICK_S)
                try:
                    yield
                finally:
                    self._waiting.discard(scope)
        except REDIS_UNREACHABLE as e:
            callers_time = isinstance(e, TimeoutError) and not self._down and cap < self.busy_timeout_s
            if not callers_time:
                self.trip(e)
            raise RedisUnavailable(f"Redis is unreachable: {e!r}") from e
        self._silence_s = 0.0  # an answer

    @contextlib.asynccontextmanager
    async def recovering(self) -> AsyncIterator[None]:
        """Bound a recovery hook's round trips by `op_timeout_s`; a fault raises RedisUnavailable."""
        try:
            async with asyncio.timeout(self.op_timeout_s):
                yield
        except REDIS_UNREACHABLE as e:
            raise RedisUnavailable(f"Redis is unreachable: {e!r}") from e

    def _watch(self, due: float) -> None:
        """Count silence while blocks wait: only the part of each tick the loop was free for."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiting:
            self._monitor = None
            return
        self._silence_s += max(0.0, _TICK_S - (now - due))  # a late tick: the loop was busy
        if self._silence_s >= self.op_timeout_s:
            self._monitor = None
            self.trip(TimeoutError(f"no answer from Redis in {self.op_timeout_s}s"))
            for scope in list(self._waiting):
                scope.reschedule(now)
            return
        self._monitor = loop.call_at(now + _TICK_S, self._watch, now + _TICK_S)

    def trip(self, cause: BaseException) -> None:
        """Mark Redis down, tell the subscribers, and start the probe (idempotent)."""
        if not self._down:
            self.trips += 1
            self._down = True
            log.warning("redis unreachable (%r); shared state skipped until it answers", cause)
            self._tell(True)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_back(), name="redis-probe")

    async def probe_once(self) -> bool:
        """One probe: PING, drop connections idle through the outage, run the recovery hooks,
        then mark Redis up. True when Redis is up (or was never down)."""
        if not self._down:
            return True
        try:
            async with self.recovering():
                await self._redis.ping()
                await drop_idle_connections(self._redis)
            for hook in self._recovery_hooks:
                await hook()
        except RedisUnavailable as e:
            log.debug("redis probe: still unreachable (%s)", e)
            return False
        self._down = False
        log.warning("redis reachable again; shared state resumed")
        self._tell(False)
        return True

    def _tell(self, down: bool) -> None:
        for on_change in self._subscribers:
            try:
                on_change(down)
            except Exception:
                log.exception("redis health subscriber failed")

    async def close(self) -> None:
        """Stop the probe and the silence watch (a later fault starts them again)."""
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None
        probe, self._probe = self._probe, None
        await cancel_and_wait(probe)

    async def _probe_until_back(self) -> None:
        while True:
            await self._clock.sleep(self._probe_interval_s)
            if await self.probe_once():
                return
