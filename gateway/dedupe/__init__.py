"""Operation-id dedupe: one execution per operation_id across callers and replicas.

store.py        the Deduplicator protocol and its counters
claiming.py     the claim / wait / hold protocol every backend shares
redis_store.py  RedisDeduplicator: Lua scripts on one key per operation_id, pub/sub wake-ups
local_store.py  LocalDeduplicator: in-process, for a single replica without Redis
fallback.py     FallbackDeduplicator: runs produce directly while Redis is unreachable
"""

from __future__ import annotations

from gateway.dedupe.fallback import FallbackDeduplicator
from gateway.dedupe.local_store import LocalDeduplicator
from gateway.dedupe.records import DedupeBackendUnavailable
from gateway.dedupe.redis_store import RedisDeduplicator
from gateway.dedupe.store import DedupeCounters, Deduplicator
from gateway.redis_client import AnyRedis
from gateway.settings import DedupeSettings

__all__ = [
    "DedupeBackendUnavailable",
    "DedupeCounters",
    "Deduplicator",
    "FallbackDeduplicator",
    "LocalDeduplicator",
    "RedisDeduplicator",
    "build_deduplicator",
]


def build_deduplicator(settings: DedupeSettings, redis: AnyRedis | None) -> Deduplicator:
    """Redis-backed with a degraded fallback when `redis` is given, else in-process."""
    if redis is None:
        return LocalDeduplicator(settings=settings)
    return FallbackDeduplicator(inner=RedisDeduplicator(redis=redis, settings=settings))
