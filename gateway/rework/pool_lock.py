"""The per-pool write lock: one read-modify-write of a pool at a time, across every replica.

    PoolLock            protocol: `async with lock.hold(pool_id, call=call): ...`
    LocalPoolLock       an asyncio.Lock per pool; enough for one replica without Redis
    RedisPoolLock       a lease per pool in Redis shared by every replica (shared_state.lease),
                        renewed while held; waiters retry with short backoff until their
                        deadline (waits and renewals on the injected `Clock`); raises
                        RedisUnavailable when Redis does not answer
    FallbackPoolLock    the local lock, then the Redis lease while the shared health is up;
                        Redis unreachable or hung -> the local lock alone (degraded), Redis
                        untouched until the health's probe gets an answer

A lease, not a lock: if the holder stalls longer than the lease (or Redis loses the key),
another replica may enter. The renewal runs every third of the lease, so that takes a stall
of two thirds of it; `lost_leases` counts the renewals that found the key gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from gateway import errors
from gateway.call import Call
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.settings import ReworkSettings
from gateway.shared_state import Leases, RedisUnavailable, SharedRedis
from gateway.shared_state.lease import new_token

log = logging.getLogger(__name__)


class PoolLock(Protocol):
    """Serialises the read-modify-write of one pool."""

    def hold(self, pool_id: str, *, call: Call) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the pool's lock for the `async with` body; waits until `call.deadline` at most."""
        ...

    @property
    def degraded(self) -> bool:
        """True while the shared backend is unreachable and only this replica is serialised."""
        ...

    async def close(self) -> None:
        """Stop background work (lease renewals, probes)."""
        ...


def _wait_budget(call: Call, max_wait_s: float) -> float:
    left = call.remaining()
    return max_wait_s if left is None else min(max_wait_s, left)


def _timed_out(call: Call, pool_id: str) -> errors.GatewayError:
    if call.expired():
        return errors.DeadlineExceeded(f"the deadline passed while waiting to update pool {pool_id}")
    return errors.Unavailable(
        f"pool {pool_id} is being updated by another call; try again",
        reason="POOL_UPDATE_IN_PROGRESS",
        retry_after=1.0,
    )


class LocalPoolLock:
    """An asyncio.Lock per pool id, forgotten when nobody holds or waits for it."""

    def __init__(self, *, settings: ReworkSettings) -> None:
        self._settings = settings
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @property
    def degraded(self) -> bool:
        """Never: there is nothing shared to lose."""
        return False

    async def close(self) -> None:
        """Nothing runs in the background."""

    @contextlib.asynccontextmanager
    async def hold(self, pool_id: str, *, call: Call) -> AsyncIterator[None]:
        """Hold the pool's in-process lock."""
        lock, users = self._locks.get(pool_id, (asyncio.Lock(), 0))
        self._locks[pool_id] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(_wait_budget(call, self._settings.lock_wait_s)):
                    await lock.acquire()
            except TimeoutError:
                raise _timed_out(call, pool_id) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[pool_id]
            if users <= 1:
                del self._locks[pool_id]
            else:
                self._locks[pool_id] = (lock, users - 1)


class RedisPoolLock:
    """A Redis lease per pool, so one write per pool runs fleet-wide (no local lock of its own)."""

    def __init__(
        self,
        *,
        shared: SharedRedis,
        settings: ReworkSettings,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self.health = shared.health
        self._leases = Leases(shared, lease_s=settings.lock_lease_s)
        self._clock = clock
        self._rng = rng
        self.lost_leases = 0

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable (until the shared health's probe gets an answer)."""
        return self.health.down

    def _key(self, pool_id: str) -> str:
        return f"{self._settings.key_prefix}:rework:lock:{pool_id}"

    @contextlib.asynccontextmanager
    async def hold(self, pool_id: str, *, call: Call) -> AsyncIterator[None]:
        """Hold the pool's lease; raises RedisUnavailable when Redis does not answer."""
        token = await self._acquire(pool_id, call)
        renewer = asyncio.get_running_loop().create_task(self._keep_renewed(pool_id, token))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self._give_back(pool_id, token)

    async def _acquire(self, pool_id: str, call: Call) -> str:
        """The lease token; waits with backoff until the call's wait budget ends."""
        key, token = self._key(pool_id), new_token()
        until = self._clock.now() + _wait_budget(call, self._settings.lock_wait_s)
        delay = 0.01
        while True:
            try:
                if await self._leases.acquire(key, token, within_s=until - self._clock.now()):
                    return token
            except RedisUnavailable:
                if not self.health.down:  # the wait ran out mid round trip: not a Redis fault
                    raise _timed_out(call, pool_id) from None
                raise
            left = until - self._clock.now()
            if left <= 0:
                raise _timed_out(call, pool_id)
            await self._clock.sleep(min(left, delay * (0.5 + self._rng())))
            delay = min(delay * 2, 0.25)

    async def _keep_renewed(self, pool_id: str, token: str) -> None:
        while True:
            await self._clock.sleep(self._settings.lock_lease_s / 3)
            try:
                renewed = await self._leases.renew(self._key(pool_id), token)
            except RedisUnavailable as e:
                log.warning("pool lock: cannot renew the lease of pool %s: %s", pool_id, e)
                continue
            if not renewed:
                self.lost_leases += 1
                log.warning("pool lock: the lease of pool %s was lost while held", pool_id)
                return

    async def _give_back(self, pool_id: str, token: str) -> None:
        try:
            await self._leases.release(self._key(pool_id), token)
        except RedisUnavailable as e:
            # The lease expires by itself; until then other replicas wait.
            log.warning("pool lock: cannot release the lease of pool %s: %s", pool_id, e)

    async def close(self) -> None:
        """Nothing runs in the background between holds."""


class FallbackPoolLock:
    """This replica's local lock, then the fleet-wide lease unless the shared health is down."""

    def __init__(self, *, primary: RedisPoolLock, local: LocalPoolLock) -> None:
        self.primary = primary
        self.local = local

    @property
    def lost_leases(self) -> int:
        """Renewals that found the lease gone (see `RedisPoolLock`)."""
        return self.primary.lost_leases

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and only this replica is serialised."""
        return self.primary.degraded

    @contextlib.asynccontextmanager
    async def hold(self, pool_id: str, *, call: Call) -> AsyncIterator[None]:
        """Hold the local lock, then the Redis lease (unless Redis is unreachable)."""
        async with self.local.hold(pool_id, call=call), contextlib.AsyncExitStack() as lease:
            if not self.primary.degraded:
                try:
                    await lease.enter_async_context(self.primary.hold(pool_id, call=call))
                except RedisUnavailable as e:
                    log.warning(
                        "pool lock: Redis unreachable, pool %s serialised on this replica only: %s",
                        pool_id,
                        e,
                    )
            yield

    async def close(self) -> None:
        """Nothing runs in the background between holds."""


def build_pool_lock(settings: ReworkSettings, shared: SharedRedis | None) -> PoolLock:
    """The Redis lease lock with a local fallback when `shared` is given, else the local lock."""
    local = LocalPoolLock(settings=settings)
    if shared is None:
        return local
    return FallbackPoolLock(primary=RedisPoolLock(shared=shared, settings=settings), local=local)
