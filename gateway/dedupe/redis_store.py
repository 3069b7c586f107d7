"""Dedupe shared by every replica through Redis (standalone or Cluster).

Key layout (one string per operation_id, so each key lives in its own cluster slot):

    {prefix}:d:{operation_id}  ->  kind | fingerprint digest | body      (see `records`)
                                   TTL = the lease while claimed, the retention once stored;
                                   once marked sent, and as an unknown outcome, the unknown-outcome
                                   retention (none by default: kept until deleted)

Round trips: a replay is one EVALSHA; a first call is two (claim, store), three for a
synchronous create (claim, mark sent, store); the lease renewal runs in the background only
while produce outlasts a third of the lease.

Wake-ups: the store and release scripts PUBLISH the operation_id on `{prefix}:d:wake`; every
replica keeps one subscription to it and wakes its local waiters of that key. In a cluster a
plain PUBLISH reaches the subscribers of every node. While the subscription is down, waiters
poll with backoff; while it is up, they still re-check every lease/2 in case a message is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import ConnectionPool

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.dedupe.claiming import ClaimingDeduplicator, random_token
from gateway.dedupe.records import (
    CLAIMED,
    KIND_UNKNOWN,
    MISMATCH,
    Busy,
    DedupeBackendUnavailable,
    Done,
    Reply,
    claim_record,
)
from gateway.dedupe.wakeups import WakeupHub
from gateway.redis_client import REDIS_UNREACHABLE, AnyRedis, RedisHealth, RedisUnavailable, health_of
from gateway.redis_scripts import LuaScript, ScriptArg
from gateway.settings import DedupeSettings

log = logging.getLogger(__name__)

# Records: kind (1 byte) | fingerprint digest (16) | token (8) [| lease end in ms, for 'S'] (see records).
# A claim's identity is bytes 2..25 (digest and token), the same in its 'C' and 'S' forms.

CLAIM_LUA = """
-- Claim an operation_id, or say what already holds it.
-- KEYS[1]  the operation's key
-- ARGV[1]  the claim record: 'C' .. fingerprint digest (16 bytes) .. holder token (8 bytes)
-- ARGV[2]  lease in milliseconds
-- ARGV[3]  unknown-outcome retention in milliseconds ('0': kept until deleted)
-- ARGV[4]  wake channel   ARGV[5] operation_id
-- returns  0 when claimed now; -1 when the key holds another fingerprint; n > 0 when another
--          request holds the claim for n more ms; else the stored record (kind, digest, body).
--          A sent claim ('S') whose lease has ended is stored as an unknown outcome ('U').
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 0
end
local fp = string.sub(ARGV[1], 2, 17)
if string.sub(v, 2, 17) ~= fp then return -1 end
local kind = string.sub(v, 1, 1)
if kind == 'C' then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return ttl
end
if kind == 'S' then
  local t = redis.call('TIME')
  local left = tonumber(string.sub(v, 26)) - (t[1] * 1000 + math.floor(t[2] / 1000))
  if left > 0 then return math.ceil(left) end
  v = 'U' .. fp
  if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], v)
  else
    redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
  end
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return v
"""

MARK_SENT_LUA = """
-- Mark a claim sent: its request may reach Toloka, so it must never be repeated blind.
-- KEYS[1]  the operation's key
-- ARGV[1]  the caller's claim record   ARGV[2] lease in milliseconds
-- ARGV[3]  unknown-outcome retention in milliseconds ('0': kept until deleted)
-- returns  1 when marked (the record lives for that retention; its lease end is in its value),
--          0 when the caller no longer holds the claim
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 2, 25) ~= string.sub(ARGV[1], 2, 25) then return 0 end
local kind = string.sub(v, 1, 1)
if kind ~= 'C' and kind ~= 'S' then return 0 end
local t = redis.call('TIME')
local lease_end = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2])
local record = 'S' .. string.sub(ARGV[1], 2, 25) .. string.format('%.0f', lease_end)
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], record)
else
  redis.call('SET', KEYS[1], record, 'PX', ARGV[3])
end
return 1
"""

STORE_LUA = """
-- Keep an outcome unless one is stored already or a different request claimed the key; wake waiters.
-- KEYS[1]  the operation's key
-- ARGV[1]  the caller's claim record   ARGV[2] the outcome record ('O', 'E' or 'U' .. digest .. body)
-- ARGV[3]  retention in milliseconds ('0': kept until deleted)
-- ARGV[4]  wake channel   ARGV[5] operation_id
-- returns  1 when stored, 0 when left as it was
local v = redis.call('GET', KEYS[1])
if v then
  local kind = string.sub(v, 1, 1)
  if (kind ~= 'C' and kind ~= 'S') or string.sub(v, 2, 17) ~= string.sub(ARGV[1], 2, 17) then
    return 0
  end
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""

RELEASE_LUA = """
-- Drop a claim (sent or not) if the caller still holds it; wake waiters so one of them takes over.
-- KEYS[1]  the operation's key
-- ARGV[1]  the caller's claim record   ARGV[2] wake channel   ARGV[3] operation_id
-- returns  1 when released, 0 when the caller no longer held it
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 2, 25) ~= string.sub(ARGV[1], 2, 25) then return 0 end
local kind = string.sub(v, 1, 1)
if kind ~= 'C' and kind ~= 'S' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""

RENEW_LUA = """
-- Extend a claim's lease if the caller still holds it.
-- KEYS[1]  the operation's key
-- ARGV[1]  the caller's claim record   ARGV[2] lease in milliseconds
-- returns  1 when renewed, 0 when the claim is gone or held by another token
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 2, 25) ~= string.sub(ARGV[1], 2, 25) then return 0 end
local kind = string.sub(v, 1, 1)
if kind == 'C' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if kind ~= 'S' then return 0 end
local t = redis.call('TIME')
local lease_end = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.sub(v, 1, 25) .. string.format('%.0f', lease_end), 'KEEPTTL')
return 1
"""


class RedisDeduplicator(ClaimingDeduplicator):
    """Dedupe across replicas; every primitive is one Lua script on one key.

    Backend failures before produce runs raise `DedupeBackendUnavailable` (wrap this in
    `FallbackDeduplicator`); failures after it ran are logged and the outcome is still returned.
    Every round trip is bounded by `health`'s op timeout; a fault trips the health, which the
    operation tracker and the pool lock on the same client share. `clock` paces the lease renewer
    and the wake-up subscription's reconnect backoff; leases and retention expire on Redis's clock.
    """

    def __init__(
        self,
        *,
        redis: AnyRedis,
        settings: DedupeSettings,
        clock: Clock = SYSTEM_CLOCK,
        new_token: Callable[[], bytes] = random_token,
        health: RedisHealth | None = None,
    ) -> None:
        super().__init__(settings=settings, clock=clock, new_token=new_token)
        self._redis = redis
        self._prefix = f"{settings.key_prefix}:d:"
        self._channel = f"{settings.key_prefix}:d:wake"
        self._lease_ms = max(1, round(settings.lease_s * 1000))
        self._retention_ms = max(1, round(settings.retention_s * 1000))
        # 0 (kept until deleted) is passed as such; any positive retention is at least 1 ms.
        self._unknown_ms = (
            max(1, round(settings.unknown_retention_s * 1000)) if settings.unknown_retention_s > 0 else 0
        )
        self.health = health or health_of(redis)
        self._claim_script = LuaScript(redis, CLAIM_LUA)
        self._mark_sent_script = LuaScript(redis, MARK_SENT_LUA)
        self._store_script = LuaScript(redis, STORE_LUA)
        self._release_script = LuaScript(redis, RELEASE_LUA)
        self._renew_script = LuaScript(redis, RENEW_LUA)
        self._cluster_pending = redis if isinstance(redis, RedisCluster) else None
        self._init_lock = asyncio.Lock()
        self._wakeups = RedisWakeups(
            redis=redis,
            channel=self._channel,
            hub=self._hub,
            clock=clock,
            ready=self._initialize_cluster,
            health=self.health,
        )

    async def _initialize_cluster(self) -> None:
        # redis-py 8.1's RedisCluster, hit by many concurrent commands before its first
        # initialize() completes, rebuilds nodes under running commands (AttributeError on a
        # None writer in our 50-duplicates test); one initialize() before any command avoids it.
        async with self._init_lock:
            if self._cluster_pending is not None:
                await self._cluster_pending.initialize()
                self._cluster_pending = None

    async def close(self) -> None:
        """Let detached holders settle, then stop the wake-up subscription and the health probe."""
        await super().close()
        await self._wakeups.close()
        await self.health.close()

    def _before_run(self) -> None:
        self._wakeups.start()

    def _live(self) -> bool:
        return self._wakeups.live

    async def _claim(self, key: str, fp: bytes, token: bytes) -> Reply:
        args = (claim_record(fp, token), self._lease_ms, self._unknown_ms, self._channel, key)
        reply = await self._eval(self._claim_script, key, args)
        if isinstance(reply, bytes):
            return Done.parse(reply)
        if reply == 0:
            return CLAIMED
        if reply < 0:
            return MISMATCH
        return Busy(reply / 1000)

    async def _mark_sent(self, key: str, fp: bytes, token: bytes) -> bool:
        args = (claim_record(fp, token), self._lease_ms, self._unknown_ms)
        return bool(await self._eval(self._mark_sent_script, key, args))

    async def _store(self, key: str, fp: bytes, token: bytes, kind: bytes, body: bytes) -> None:
        retention = self._unknown_ms if kind == KIND_UNKNOWN else self._retention_ms
        args = (claim_record(fp, token), kind + fp + body, retention, self._channel, key)
        await self._eval(self._store_script, key, args)

    async def _release(self, key: str, fp: bytes, token: bytes) -> None:
        await self._eval(self._release_script, key, (claim_record(fp, token), self._channel, key))

    async def _renew(self, key: str, fp: bytes, token: bytes) -> bool:
        return bool(await self._eval(self._renew_script, key, (claim_record(fp, token), self._lease_ms)))

    async def _eval(self, script: LuaScript, key: str, args: Sequence[ScriptArg]) -> Any:
        try:
            async with self.health.guard():
                if self._cluster_pending is not None:
                    await self._initialize_cluster()
                return await script(keys=[self._prefix + key], args=args)
        except RedisUnavailable as e:
            self.counters.backend_errors += 1
            raise DedupeBackendUnavailable(f"the dedupe store is unreachable: {e}") from e


class RedisWakeups:
    """One subscription per process to the wake channel, feeding a `WakeupHub`.

    `live` turns true only when Redis has confirmed the subscription, so a waiter that registered
    after that cannot miss a PUBLISH that follows its claim attempt.
    """

    def __init__(
        self,
        *,
        redis: AnyRedis,
        channel: str,
        hub: WakeupHub,
        clock: Clock,
        ready: Callable[[], Awaitable[None]],
        health: RedisHealth,
    ) -> None:
        self._redis = redis
        self._health = health
        self._ready = ready
        self._channel = channel
        self._hub = hub
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.live = False
        self._confirmed = False
        self._closing = False

    def start(self) -> None:
        """Start listening in the background (idempotent)."""
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        """Stop listening."""
        self._closing = True
        task, self._task = self._task, None
        # redis-py may swallow a cancellation (inside asyncio.wait_for), so insist until it ends.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)

    async def _listen(self) -> None:
        backoff = 0.05
        while not self._closing:
            self._confirmed = False
            try:
                if not self._health.down:  # while it is, waiters poll and nothing waits on Redis
                    await self._subscribe_and_dispatch()
            except RedisUnavailable as e:
                log.debug("dedupe: wake-up subscription lost: %s", e)
            except REDIS_UNREACHABLE as e:
                self._health.trip(e)
                log.debug("dedupe: wake-up subscription lost: %s", e)
            backoff = 0.05 if self._confirmed else min(backoff * 2, 1.0)
            await self._clock.sleep(backoff)

    async def _subscribe_and_dispatch(self) -> None:
        async with self._health.guard():
            subscriber, owned = await self._subscriber()
        pubsub = subscriber.pubsub()
        try:
            async with self._health.guard():
                await pubsub.subscribe(self._channel)
            while not self._closing and not self._health.down:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is None:
                    continue
                if msg["type"] == "message":
                    self._hub.notify(msg["data"].decode())
                elif msg["type"] == "subscribe":
                    self.live = self._confirmed = True
                    self._hub.notify_all()  # re-check: messages may have passed unseen until now
        finally:
            if self.live:
                self.live = False
                self._hub.notify_all()  # switch waiters to polling
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._health.op_timeout_s):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            if owned:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._health.op_timeout_s):
                        await subscriber.aclose()

    async def _subscriber(self) -> tuple[aioredis.Redis, bool]:
        """The client to subscribe with, and whether it is ours to close.

        In a cluster a plain PUBLISH reaches the subscribers of every node, so one connection to
        any node will do. redis-py's ClusterPubSub (8.1) borrows the node's command connections
        and raced with concurrent commands in our tests (AttributeError in the handshake), so
        the subscriber gets its own plain client to a random primary instead.
        """
        if not isinstance(self._redis, RedisCluster):
            return self._redis, False
        await self._ready()
        node = self._redis.get_random_node()
        pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
        return aioredis.Redis(connection_pool=pool), True
