"""The shared operation poller: one poll loop per operation across all callers and replicas."""

from __future__ import annotations

from gateway.operations.local_tracker import LocalOperationTracker
from gateway.operations.redis_tracker import RedisOperationTracker
from gateway.operations.tracker import FetchOperation, OperationTracker
from gateway.settings import PollerSettings
from gateway.shared_state import SharedRedis

__all__ = [
    "FetchOperation",
    "LocalOperationTracker",
    "OperationTracker",
    "RedisOperationTracker",
    "build_operation_tracker",
]


def build_operation_tracker(
    settings: PollerSettings, shared: SharedRedis | None, fetch: FetchOperation
) -> OperationTracker:
    """The Redis tracker when a Redis is configured, else the in-process one."""
    if shared is None:
        return LocalOperationTracker(settings=settings, fetch=fetch)
    return RedisOperationTracker(settings=settings, shared=shared, fetch=fetch)
