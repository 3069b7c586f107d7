"""Fixtures for the rate-limiter suites: a manual clock and limiters on either backend."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from gateway.ratelimit import AdmissionLimiter, LocalRateLimiter, RedisRateLimiter
from gateway.redis_client import AnyRedis, connect_redis
from gateway.settings import RateLimitSettings
from tests.support.redis_servers import RedisCluster, RedisServer

CLUSTER_BUS_OFFSET = 10_000

T0 = 1000.0  # on a bucket boundary for every period the suites use


class ManualClock:
    """Time that moves only when a test (or a limiter's sleep) moves it."""

    def __init__(self, start: float = T0) -> None:
        self._now = start
        self.slept = 0.0

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = when

    async def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        self.slept += max(0.0, seconds)
        await asyncio.sleep(0)


MakeLimiter = Callable[[RateLimitSettings], AdmissionLimiter]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["local", "redis"])
async def make_limiter(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[MakeLimiter]:
    """Builds limiters on the parametrised backend, all reading the same manual clock.

    The Redis backend takes its time from the clock too (the scripts' test-only time override),
    so both backends see exactly the same instants.
    """
    clients: list[AnyRedis] = []

    def make(settings: RateLimitSettings) -> AdmissionLimiter:
        if request.param == "local":
            return LocalRateLimiter(settings=settings, clock=clock)
        client = connect_redis(request.getfixturevalue("redis_url"))
        clients.append(client)
        return RedisRateLimiter(redis=client, settings=settings, clock=clock, server_time=clock.now)

    yield make
    for client in clients:
        await client.aclose()


def private_port() -> int:
    """A free port below the kernel's ephemeral range (32768+), with its cluster-bus port too.

    `tests.support.free_port()` hands out ephemeral ports, which other suites running at the
    same time also draw from: a server restarted on "its" port, or started on a port another
    process just took, would silently share a Redis with another suite (and its FLUSHALL).
    Ports in 10000-21999 (buses 20000-31999) are never handed out by `bind(port=0)`.
    """
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(10_000, 22_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
        except OSError:
            continue
        return port


def start_private(server: RedisServer) -> RedisServer:
    """Start `server` and check that the process answering is ours, not another suite's."""
    server.start()
    assert server.process is not None
    pid = server.cli("INFO", "server")
    assert f"process_id:{server.process.pid}" in pid, "another process answers on this port"
    return server


@pytest.fixture(scope="session")
def redis_proc() -> Iterator[RedisServer]:
    """Overrides the shared fixture with a server on a private port (see `private_port`)."""
    server = RedisServer(port=private_port())
    try:
        yield start_private(server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_proc() -> Iterator[RedisCluster]:
    """Overrides the shared fixture: `tests.support` picks any free port, and a node whose port is
    above 55535 cannot open its cluster bus (port + 10000), so the shared fixture fails at random.
    Ports are private too (see `private_port`).
    """
    cluster = RedisCluster()
    try:
        for _ in range(3):
            node = RedisServer(
                port=private_port(),
                extra_args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "2000"),
            )  # fmt: skip
            cluster.nodes.append(node)
            start_private(node)
        addrs = [f"127.0.0.1:{n.port}" for n in cluster.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not all("cluster_state:ok" in n.cli("cluster", "info") for n in cluster.nodes):
            assert time.monotonic() < deadline, "Redis Cluster did not reach cluster_state:ok"
            time.sleep(0.05)
        yield cluster
    finally:
        cluster.stop()
