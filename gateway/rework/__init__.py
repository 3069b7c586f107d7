"""SetReworkRules / GetReworkRules: typed re-execution rules on a pool, applied safely.

service.py      ReworkService: validate, lock the pool, read, compare, merge, write, answer
pool_writer.py  PoolWriter: PUT, with close-for-update and reopen around it for an OPEN pool
pool_lock.py    PoolLock: LocalPoolLock (asyncio) and RedisPoolLock (fleet-wide lease)

The JSON translation lives in `gateway.translate.quality_control`.
"""

from __future__ import annotations

from gateway.dedupe.store import Deduplicator
from gateway.redis_client import AnyRedis
from gateway.rework.pool_lock import LocalPoolLock, PoolLock, RedisPoolLock, build_pool_lock
from gateway.rework.pool_writer import PoolWriter
from gateway.rework.service import ReworkService
from gateway.settings import ReworkSettings
from gateway.toloka.protocol import Toloka

__all__ = [
    "LocalPoolLock",
    "PoolLock",
    "PoolWriter",
    "RedisPoolLock",
    "ReworkService",
    "build_pool_lock",
    "build_rework_service",
]


def build_rework_service(
    settings: ReworkSettings, *, toloka: Toloka, dedupe: Deduplicator, redis: AnyRedis | None
) -> ReworkService:
    """The rework use cases with a fleet-wide pool lock when `redis` is given."""
    return ReworkService(
        toloka=toloka,
        dedupe=dedupe,
        lock=build_pool_lock(settings, redis),
        writer=PoolWriter(toloka=toloka, settings=settings),
    )
