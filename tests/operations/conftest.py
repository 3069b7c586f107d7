"""Fixtures for the poller suites: a scripted Toloka source and trackers of either kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.operations import LocalOperationTracker, RedisOperationTracker
from gateway.settings import PollerSettings
from gateway.shared_state import SharedRedis, connect_redis
from tests.operations.scripted_operations import ScriptedOperations

SETTINGS = PollerSettings(
    initial_interval_s=0.02,
    max_interval_s=0.08,
    multiplier=2.0,
    jitter=0.1,
    lease_s=0.45,
    fresh_s=0.2,
    final_retention_s=3600.0,
    max_wait_s=20.0,
    key_prefix="tgwtest",
)

Tracker = LocalOperationTracker | RedisOperationTracker
MakeTracker = Callable[..., Awaitable[Any]]


@pytest.fixture
def source() -> ScriptedOperations:
    return ScriptedOperations()


async def _trackers(kind: str, url: str, source: ScriptedOperations) -> AsyncIterator[MakeTracker]:
    made: list[Tracker] = []
    clients: list[SharedRedis] = []

    async def make(settings: PollerSettings = SETTINGS, **kw: Any) -> Tracker:
        tracker: Tracker
        if kind == "local":
            tracker = LocalOperationTracker(settings=settings, fetch=source.fetch, **kw)
        else:
            shared = SharedRedis(connect_redis(url))
            clients.append(shared)
            tracker = RedisOperationTracker(settings=settings, shared=shared, fetch=source.fetch, **kw)
        made.append(tracker)
        return tracker

    make.url = url  # type: ignore[attr-defined]
    yield make
    for tracker in made:
        await tracker.close()
    for shared in clients:
        await shared.close()


@pytest.fixture(params=["local", "redis"])
async def make_tracker(
    request: pytest.FixtureRequest, source: ScriptedOperations
) -> AsyncIterator[MakeTracker]:
    """Builds trackers of the parametrised kind; each Redis one has its own connection (a replica)."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    async for make in _trackers(request.param, url, source):
        yield make


@pytest.fixture(params=["standalone", "cluster"])
async def make_replica(
    request: pytest.FixtureRequest, source: ScriptedOperations
) -> AsyncIterator[MakeTracker]:
    """Redis trackers as separate replicas, on a standalone server or on a real Cluster."""
    fixture = "redis_url" if request.param == "standalone" else "redis_cluster_proc"
    value = request.getfixturevalue(fixture)
    url = value if isinstance(value, str) else value.url
    async for make in _trackers("redis", url, source):
        yield make
