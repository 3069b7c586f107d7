"""SetReworkRules / GetReworkRules: typed re-execution rules on a pool, applied safely.

service.py      ReworkService: validate, lock the pool, read, compare, merge, write, answer
pool_writer.py  PoolWriter: PUT, with close-for-update and reopen around it for an OPEN pool
pool_lock.py    PoolLock: LocalPoolLock (asyncio), RedisPoolLock (fleet-wide lease), FallbackPoolLock

The JSON translation lives in `gateway.translate.quality_control`.
"""

from __future__ import annotations

from gateway.dedupe.store import Deduplicator
from gateway.rework.pool_lock import FallbackPoolLock, LocalPoolLock, PoolLock, RedisPoolLock, build_pool_lock
from gateway.rework.pool_writer import PoolWriter
from gateway.rework.service import ReworkService
from gateway.settings import ReworkSettings
from gateway.shared_state import SharedRedis
from gateway.toloka.protocol import Toloka

__all__ = [
    "FallbackPoolLock",
    "LocalPoolLock",
    "PoolLock",
    "PoolWriter",
    "RedisPoolLock",
    "ReworkService",
    "build_pool_lock",
    "build_rework_service",
]


def build_rework_service(
    settings: ReworkSettings, *, toloka: Toloka, dedupe: Deduplicator, shared: SharedRedis | None
) -> ReworkService:
    """The rework use cases with a fleet-wide pool lock when `shared` is given."""
    return ReworkService(
        toloka=toloka,
        dedupe=dedupe,
        lock=build_pool_lock(settings, shared),
        writer=PoolWriter(toloka=toloka, settings=settings),
    )
