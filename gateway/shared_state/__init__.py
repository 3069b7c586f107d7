"""The shared Redis state every replica uses, and the one design of its failure.

client.py      connect_redis (standalone or Cluster, TCP or TLS), REDIS_UNREACHABLE, and
               RedisUnavailable: the one "shared state unavailable" error
health.py      RedisHealth: tripped by any backend's fault, cleared by one probe; subscribers
               hear every change, `on_recovered` hooks run before Redis is used again
shared.py      SharedRedis: the client, its health and its readiness (a Cluster's slot map
               loaded once), built by the composition root and passed to every backend
scripts.py     LuaScript: EVALSHA, loaded once; every script opens with its KEYS / ARGV /
               returns header
lease.py       Leases: acquire, renew, release, expire by Redis's own PX
subscriber.py  Subscription: one pub/sub channel kept subscribed while Redis answers

Every backend built on it (rate limits, dedupe, the operation poller, the pool lock) has a local
twin, and degraded mode is the backend choosing its twin while `health.down`: the `Fallback*`
wrappers for the limiter and dedupe, the pool lock's local lock, the poller's per-replica loop.
"""

from __future__ import annotations

from gateway.shared_state.client import REDIS_UNREACHABLE, AnyRedis, RedisUnavailable, connect_redis
from gateway.shared_state.health import RedisHealth
from gateway.shared_state.lease import Leases
from gateway.shared_state.scripts import LuaScript
from gateway.shared_state.shared import SharedRedis
from gateway.shared_state.subscriber import Subscription

__all__ = [
    "REDIS_UNREACHABLE",
    "AnyRedis",
    "Leases",
    "LuaScript",
    "RedisHealth",
    "RedisUnavailable",
    "SharedRedis",
    "Subscription",
    "connect_redis",
]
