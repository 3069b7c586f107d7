"""Fixtures shared by every test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_servers import RedisCluster, RedisServer, redis_cluster, redis_server


@pytest.fixture(scope="session")
def redis_proc() -> Iterator[RedisServer]:
    """One real redis-server for the session; tests use distinct key prefixes or FLUSHALL."""
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_proc: RedisServer) -> str:
    """A clean database on the session's redis-server."""
    redis_proc.cli("FLUSHALL")
    return redis_proc.url


@pytest.fixture(scope="session")
def redis_cluster_proc() -> Iterator[RedisCluster]:
    """A real three-master Redis Cluster for the session."""
    with redis_cluster() as cluster:
        yield cluster
