"""TEMPORARY wiring written by the gateway engineer so the app runs; the poller engineer replaces this file."""

from __future__ import annotations

from gateway.operations.local_tracker import LocalOperationTracker
from gateway.operations.tracker import FetchOperation, OperationTracker
from gateway.redis_client import AnyRedis
from gateway.settings import PollerSettings


def build_operation_tracker(
    settings: PollerSettings, redis: AnyRedis | None, fetch: FetchOperation
) -> OperationTracker:
    return LocalOperationTracker(settings=settings, fetch=fetch)
