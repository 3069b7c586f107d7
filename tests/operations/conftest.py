"""Fixtures for the poller suites: a scripted Toloka source and trackers of either kind."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from gateway.operations import LocalOperationTracker, RedisOperationTracker
from gateway.redis_client import connect_redis
from gateway.settings import PollerSettings
from tests.operations.scripted_operations import ScriptedOperations
from tests.support.redis_servers import RedisCluster, RedisServer, _binary

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
    clients: list[Any] = []

    async def make(settings: PollerSettings = SETTINGS, **kw: Any) -> Tracker:
        tracker: Tracker
        if kind == "local":
            tracker = LocalOperationTracker(settings=settings, fetch=source.fetch, **kw)
        else:
            client = connect_redis(url)
            clients.append(client)
            tracker = RedisOperationTracker(settings=settings, redis=client, fetch=source.fetch, **kw)
        made.append(tracker)
        return tracker

    make.url = url  # type: ignore[attr-defined]
    yield make
    for tracker in made:
        await tracker.close()
    for client in clients:
        await client.aclose()


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


def _cluster_port() -> int:
    # A cluster node's bus listens on port + 10000, so the node's port must be <= 55535.
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port <= 55535:
            return port


@pytest.fixture(scope="session")
def redis_cluster_proc() -> Iterator[RedisCluster]:
    """The shared Cluster fixture, but with node ports whose bus port (+10000) is valid.

    tests/support's free_port() may pick a port above 55535, where redis-server refuses cluster
    mode; this override keeps the poller suite from failing at random until that is fixed there.
    """
    cluster = RedisCluster()
    try:
        for _ in range(3):
            node = RedisServer(
                port=_cluster_port(),
                extra_args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "2000"),
            )  # fmt: skip
            cluster.nodes.append(node.start())
        addrs = [f"127.0.0.1:{n.port}" for n in cluster.nodes]
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not all("cluster_state:ok" in n.cli("cluster", "info") for n in cluster.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        yield cluster
    finally:
        cluster.stop()
