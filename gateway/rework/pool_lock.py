"""The per-pool write lock: one read-modify-write of a pool at a time, across every replica.

    PoolLock            protocol: `async with lock.hold(pool_id, call=call): ...`
    LocalPoolLock       an asyncio.Lock per pool; enough for one replica without Redis
    RedisPoolLock       the local lock, then a lease in Redis shared by every replica:
                        SET key token NX PX lease, renewed while held, released by a
                        compare-and-delete script; waiters retry with short backoff
                        until their deadline (waits and renewals on the injected
                        `Clock`). Every round trip is bounded by the shared
                        `RedisHealth`'s op timeout; Redis unreachable or hung -> the local
                        lock alone (degraded), Redis untouched until the health's probe
                        gets an answer.

A lease, not a lock: if the holder stalls longer than the lease (or Redis loses the key),
another replica may enter. The renewal runs every third of the lease, so that takes a stall
of two thirds of it; `lost_leases` counts the renewals that found the key gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from gateway import errors
from gateway.call import Call
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.redis_client import AnyRedis, RedisHealth, RedisUnavailable, health_of
from gateway.redis_scripts import LuaScript
from gateway.settings import ReworkSettings

log = logging.getLogger(__name__)

# KEYS[1] lock key; ARGV[1] holder token. Deletes the key only if the token still holds it.
# Returns 1 when released, 0 when the lease had already passed to someone else.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1] lock key; ARGV[1] holder token; ARGV[2] lease in ms. Extends the lease only if the
# token still holds it. Returns 1 when extended, 0 when the lease was lost.
RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


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
    """The local lock plus a Redis lease per pool, so one write per pool runs fleet-wide."""

    def __init__(
        self,
        *,
        redis: AnyRedis,
        settings: ReworkSettings,
        health: RedisHealth | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._local = LocalPoolLock(settings=settings)
        self._health = health or health_of(redis)
        self._clock = clock
        self._rng = rng
        self._release = LuaScript(redis, RELEASE_LUA)
        self._renew = LuaScript(redis, RENEW_LUA)
        self.lost_leases = 0

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable (until the shared health's probe gets an answer)."""
        return self._health.down

    def _key(self, pool_id: str) -> str:
        return f"{self._settings.key_prefix}:rework:lock:{pool_id}"

    @contextlib.asynccontextmanager
    async def hold(self, pool_id: str, *, call: Call) -> AsyncIterator[None]:
        """Hold the local lock, then the Redis lease (unless Redis is unreachable)."""
        async with self._local.hold(pool_id, call=call):
            token = await self._acquire(pool_id, call)
            if token is None:
                yield
                return
            renewer = asyncio.get_running_loop().create_task(self._keep_renewed(pool_id, token))
            try:
                yield
            finally:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
                await self._give_back(pool_id, token)

    async def _acquire(self, pool_id: str, call: Call) -> str | None:
        """The lease token, or None when Redis is unreachable (degraded); waits with backoff."""
        key, token = self._key(pool_id), secrets.token_hex(16)
        lease_ms = int(self._settings.lock_lease_s * 1000)
        until = self._clock.now() + _wait_budget(call, self._settings.lock_wait_s)
        delay = 0.01
        if self._health.down:
            return None
        while True:
            try:
                async with self._health.guard(within_s=until - self._clock.now()):
                    if await self._redis.set(key, token, nx=True, px=lease_ms):
                        return token
            except RedisUnavailable as e:
                if not self._health.down:  # the wait ran out mid round trip: not a Redis fault
                    raise _timed_out(call, pool_id) from None
                log.warning(
                    "pool lock: Redis unreachable, pool %s serialised on this replica only: %s", pool_id, e
                )
                return None
            left = until - self._clock.now()
            if left <= 0:
                raise _timed_out(call, pool_id)
            await self._clock.sleep(min(left, delay * (0.5 + self._rng())))
            delay = min(delay * 2, 0.25)

    async def _keep_renewed(self, pool_id: str, token: str) -> None:
        lease_ms = int(self._settings.lock_lease_s * 1000)
        while True:
            await self._clock.sleep(self._settings.lock_lease_s / 3)
            try:
                async with self._health.guard():
                    renewed = await self._renew(keys=[self._key(pool_id)], args=[token, lease_ms])
            except RedisUnavailable as e:
                log.warning("pool lock: cannot renew the lease of pool %s: %s", pool_id, e)
                continue
            if not renewed:
                self.lost_leases += 1
                log.warning("pool lock: the lease of pool %s was lost while held", pool_id)
                return

    async def _give_back(self, pool_id: str, token: str) -> None:
        try:
            async with self._health.guard():
                await self._release(keys=[self._key(pool_id)], args=[token])
        except RedisUnavailable as e:
            # The lease expires by itself; until then other replicas wait.
            log.warning("pool lock: cannot release the lease of pool %s: %s", pool_id, e)

    async def close(self) -> None:
        """Stop the shared health's probe (the Redis client belongs to the caller)."""
        await self._health.close()


def build_pool_lock(settings: ReworkSettings, redis: AnyRedis | None) -> PoolLock:
    """A Redis lease lock (with a local fallback) when `redis` is given, else the local lock."""
    if redis is None:
        return LocalPoolLock(settings=settings)
    return RedisPoolLock(redis=redis, settings=settings)
