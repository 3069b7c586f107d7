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
from gateway.dedupe.redis_store import RedisDeduplicator
from gateway.dedupe.store import DedupeCounters, Deduplicator
from gateway.settings import DedupeSettings
from gateway.shared_state import SharedRedis

__all__ = [
    "DedupeCounters",
    "Deduplicator",
    "FallbackDeduplicator",
    "LocalDeduplicator",
    "RedisDeduplicator",
    "build_deduplicator",
]


def build_deduplicator(settings: DedupeSettings, shared: SharedRedis | None) -> Deduplicator:
    """Redis-backed with a degraded fallback when `shared` is given, else in-process."""
    if shared is None:
        return LocalDeduplicator(settings=settings)
    return FallbackDeduplicator(inner=RedisDeduplicator(shared=shared, settings=settings))
