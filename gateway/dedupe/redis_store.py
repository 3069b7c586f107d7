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

import logging
from collections.abc import Callable, Sequence
from typing import Any

from gateway import errors
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.dedupe.claiming import ClaimingDeduplicator, random_token
from gateway.dedupe.records import (
    CLAIMED,
    KIND_UNKNOWN,
    MISMATCH,
    Busy,
    Done,
    Reply,
    claim_record,
)
from gateway.settings import DedupeSettings
from gateway.shared_state import LuaScript, RedisUnavailable, SharedRedis, Subscription
from gateway.shared_state.scripts import ScriptArg

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

CLAIM_RELEASE_LUA = """
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

CLAIM_RENEW_LUA = """
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

    Backend failures before produce runs raise `RedisUnavailable` (wrap this in
    `FallbackDeduplicator`); failures after it ran are logged and the outcome is still returned.
    Every round trip is bounded by the shared health; a fault trips it for every backend on the
    client. `clock` paces the lease renewer and the wake-up subscription's reconnect backoff;
    leases and retention expire on Redis's clock.
    """

    def __init__(
        self,
        *,
        shared: SharedRedis,
        settings: DedupeSettings,
        clock: Clock = SYSTEM_CLOCK,
        new_token: Callable[[], bytes] = random_token,
    ) -> None:
        super().__init__(settings=settings, clock=clock, new_token=new_token)
        self.health = shared.health
        self._prefix = f"{settings.key_prefix}:d:"
        self._channel = f"{settings.key_prefix}:d:wake"
        self._lease_ms = max(1, round(settings.lease_s * 1000))
        self._retention_ms = max(1, round(settings.retention_s * 1000))
        # 0 (kept until deleted) is passed as such; any positive retention is at least 1 ms.
        self._unknown_ms = (
            max(1, round(settings.unknown_retention_s * 1000)) if settings.unknown_retention_s > 0 else 0
        )
        self._claim_script = shared.script(CLAIM_LUA)
        self._mark_sent_script = shared.script(MARK_SENT_LUA)
        self._store_script = shared.script(STORE_LUA)
        self._release_script = shared.script(CLAIM_RELEASE_LUA)
        self._renew_script = shared.script(CLAIM_RENEW_LUA)
        self._wakeups = Subscription(
            shared, self._channel, on_message=self._wake, on_live=self._on_live, clock=clock
        )

    async def close(self) -> None:
        """Let detached holders settle, then stop the wake-up subscription."""
        await super().close()
        await self._wakeups.close()

    def _wake(self, operation_id: bytes) -> None:
        self._hub.notify(operation_id.decode())

    def _on_live(self, live: bool) -> None:
        # Up: re-check, as messages may have passed unseen until now. Down: switch waiters to polling.
        self._hub.notify_all()

    def _before_run(self) -> None:
        self._wakeups.start()

    def _live(self) -> bool:
        return self._wakeups.live

    async def _claim(self, key: str, fp: bytes, token: bytes, *, within_s: float | None = None) -> Reply:
        args = (claim_record(fp, token), self._lease_ms, self._unknown_ms, self._channel, key)
        reply = await self._eval(self._claim_script, key, args, within_s=within_s)
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

    async def _eval(
        self, script: LuaScript, key: str, args: Sequence[ScriptArg], *, within_s: float | None = None
    ) -> Any:
        """One script on the operation's key, bounded by the shared health and `within_s`.

        Raises RedisUnavailable when Redis does not answer, and DeadlineExceeded when the caller's
        time (`within_s`) ran out first: that is not a Redis fault, and must not let the fallback
        run produce without the claim. A claim the script made all the same lapses after its lease.
        """
        try:
            async with self.health.guard(within_s=within_s):
                return await script(keys=[self._prefix + key], args=args)
        except RedisUnavailable:
            if within_s is not None and not self.health.down:
                raise errors.DeadlineExceeded(
                    "the deadline passed while the shared state was asked about this operation_id; nothing was sent"
                ) from None
            self.counters.backend_errors += 1
            raise
