"""Fixtures shared by every test suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

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


@pytest.fixture
async def hung_redis_url() -> AsyncIterator[str]:
    """A Redis that hangs: a TCP server that accepts every connection and never sends a byte."""
    held: list[asyncio.StreamWriter] = []

    async def accept_and_stall(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await asyncio.Event().wait()

    server = await asyncio.start_server(accept_and_stall, "127.0.0.1", 0)
    yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    for writer in held:
        writer.close()
    server.close()
