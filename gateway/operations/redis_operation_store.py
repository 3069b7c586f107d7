"""Redis keys and scripts of the shared poller.

Keys (the hash tag keeps one operation's keys in one Cluster slot, so a script may touch them all):
    {prefix}:op:{<id>}           the latest state: Toloka's operation JSON (orjson bytes), nothing
                                 added; TTL final_retention_s. `!` marks an id Toloka does not know
                                 (TTL lease_s).
    {prefix}:op:{<id>}:lease     the lease on polling it: a replica's random token, PX lease_s
    {prefix}:op:{<id>}:waiters   replicas that have waiters: sorted set replica id -> expiry (ms,
                                 Redis TIME), refreshed by each replica's heartbeat
    {prefix}:op:{<id>}:pools     the pools the operation touches (a JSON list), recorded by the
                                 replica that created it, for pool permissions; TTL final_retention_s
Channel `{prefix}:op:events` carries every new state (the JSON) and `!<id>` for an unknown id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.operations.operation_state import Operation, rank
from gateway.settings import PollerSettings
from gateway.shared_state import Leases, SharedRedis

NOT_FOUND_MARK = b"!"

_HEARTBEAT = """
-- Refresh the replica's presence, then take or renew the lease for a replica with waiters, or
-- renew it for the holder while any replica has waiters (else drop it). Nothing is done for a
-- final or unknown operation. (The lease is the one of shared_state.lease, taken here together
-- with the waiter set it depends on.)
-- KEYS[1]  state   KEYS[2] lease   KEYS[3] waiters
-- ARGV[1]  replica id   ARGV[2] lease token   ARGV[3] lease ms   ARGV[4] "1" if the replica has waiters
-- returns  {1 if this replica holds the lease, lease PTTL ms, replicas with waiters, state or ""}
local state = redis.call('GET', KEYS[1]) or ''
if string.sub(state, 1, 1) == '{' then
  local status = cjson.decode(state)['status']
  if status == 'SUCCESS' or status == 'FAIL' then return {0, -2, 0, state} end
elseif state ~= '' then
  return {0, -2, 0, state}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_ms = tonumber(ARGV[3])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[3], string.format('%d', now + lease_ms), ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%d', now))
local live = redis.call('ZCARD', KEYS[3])
if live > 0 then redis.call('PEXPIRE', KEYS[3], lease_ms * 2) end
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[2] then
  if live > 0 then
    redis.call('PEXPIRE', KEYS[2], lease_ms)
    return {1, lease_ms, live, state}
  end
  redis.call('DEL', KEYS[2])
  return {0, -2, 0, state}
end
if not holder and live > 0 and ARGV[4] == '1' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', lease_ms)
  return {1, lease_ms, live, state}
end
return {0, redis.call('PTTL', KEYS[2]), live, state}
"""

_STORE = """
-- Store the state unless the stored one is further along, and publish it when it differs.
-- KEYS[1]  state
-- ARGV[1]  operation JSON   ARGV[2] its rank (status * 1000 + progress)   ARGV[3] TTL ms
-- ARGV[4]  channel
-- returns  1 when stored and published, 0 when stale or identical
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return 0 end
if cur and string.sub(cur, 1, 1) == '{' then
  local c = cjson.decode(cur)
  local ranks = {PENDING = 1, RUNNING = 2, SUCCESS = 3, FAIL = 3}
  local progress = tonumber(c['progress']) or 0
  if (ranks[c['status']] or 0) * 1000 + progress > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
"""

_NOT_FOUND = """
-- Mark the id unknown unless some state is stored, and publish "!<id>".
-- KEYS[1]  state
-- ARGV[1]  operation id   ARGV[2] TTL ms   ARGV[3] channel
-- returns  1 when marked, 0 when a state was there
if redis.call('SET', KEYS[1], '!', 'NX', 'PX', ARGV[2]) then
  redis.call('PUBLISH', ARGV[3], '!' .. ARGV[1])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Heartbeat:
    """What one heartbeat learned."""

    holder: bool
    lease_ttl_s: float
    replicas_waiting: int
    state: bytes


def _as_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value or b"")


class RedisOperationStore:
    """The poller's Redis round trips, one script or command each.

    Each is bounded by the health's op timeout (and `within_s` where a caller waits) and raises
    RedisUnavailable on a fault, a timeout, or at once while Redis is known to be down.
    """

    def __init__(self, *, shared: SharedRedis, settings: PollerSettings) -> None:
        self._shared = shared
        self.health = shared.health
        self._prefix = settings.key_prefix
        self._lease_ms = max(1, round(settings.lease_s * 1000))
        self._retention_ms = max(1, round(settings.final_retention_s * 1000))
        self.channel = f"{self._prefix}:op:events"
        self._heartbeat = shared.script(_HEARTBEAT)
        self._store = shared.script(_STORE)
        self._not_found = shared.script(_NOT_FOUND)
        self._leases = Leases(shared, lease_s=settings.lease_s)

    def state_key(self, operation_id: str) -> str:
        """Where the latest state of an operation is kept."""
        return f"{self._prefix}:op:{{{operation_id}}}"

    async def read(self, operation_id: str, *, within_s: float | None = None) -> bytes:
        """The stored state (JSON, the not-found mark, or b"" when none)."""
        async with self.health.guard(within_s=within_s):
            redis = await self._shared.ready()
            return _as_bytes(await redis.get(self.state_key(operation_id)))

    async def heartbeat(self, operation_id: str, *, replica: str, token: str, has_waiters: bool) -> Heartbeat:
        """Refresh presence and take, renew or drop the lease (see _HEARTBEAT)."""
        key = self.state_key(operation_id)
        async with self.health.guard():
            holder, ttl_ms, live, state = await self._heartbeat(
                keys=[key, f"{key}:lease", f"{key}:waiters"],
                args=[replica, token, self._lease_ms, "1" if has_waiters else "0"],
            )
        return Heartbeat(bool(int(holder)), int(ttl_ms) / 1000, int(live), _as_bytes(state))

    async def store(self, op: Operation) -> bool:
        """Store and publish a state unless a further one is stored; True when published."""
        payload = orjson.dumps(op)
        async with self.health.guard():
            done = await self._store(
                keys=[self.state_key(str(op["id"]))],
                args=[payload, rank(op), self._retention_ms, self.channel],
            )
        return bool(int(done))

    async def record_pools(self, operation_id: str, pools: frozenset[str]) -> None:
        """Keep the pools an operation touches for the retention."""
        async with self.health.guard():
            redis = await self._shared.ready()
            key = f"{self.state_key(operation_id)}:pools"
            await redis.set(key, orjson.dumps(sorted(pools)), px=self._retention_ms)

    async def read_pools(self, operation_id: str) -> frozenset[str] | None:
        """The pools recorded for an operation, or None."""
        async with self.health.guard():
            redis = await self._shared.ready()
            raw = await redis.get(f"{self.state_key(operation_id)}:pools")
        return None if raw is None else frozenset(str(p) for p in orjson.loads(raw))

    async def mark_not_found(self, operation_id: str) -> None:
        """Tell every replica, for one lease period, that Toloka does not know the id."""
        async with self.health.guard():
            await self._not_found(
                keys=[self.state_key(operation_id)], args=[operation_id, self._lease_ms, self.channel]
            )

    async def release(self, operation_id: str, *, replica: str, token: str) -> None:
        """Give up the lease and this replica's presence for an operation."""
        key = self.state_key(operation_id)
        await self._leases.release(f"{key}:lease", token)
        async with self.health.guard():
            redis = await self._shared.ready()
            await redis.zrem(f"{key}:waiters", replica)
