"""Fixtures for the rate-limit service suites: a real gateway (gRPC, real Redis) and request builders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from gateway.emulator.server import EmulatorServer
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config
from tests.support.redis_servers import RedisServer

SLOW_REDIS_S = 0.030  # three times the service's default Redis budget (10 ms)

# A small account-wide limit, a task-counted create_tasks limit, one caller's quota; while Redis is
# down a replica holds 40% of each (2 of the account's 5).
LIMITS = """
[rate_limits]
degraded_share = 0.4
limits = [
  { name = "account", capacity = 5, period = "1m" },
  { name = "tasks", kinds = ["create_tasks"], capacity = 10, period = "1m", unit = "tasks" },
]
[rate_limits.callers]
svc = [{ name = "svc_quota", capacity = 2, period = "1m" }]
"""

StartGateway = Callable[..., Awaitable[InProcessGateway]]


def request(*descriptors: dict[str, Any], domain: str = "toloka", hits: int = 0) -> Any:
    """A RateLimitRequest; each descriptor is its entries, plus "hits" for its own hits_addend."""
    out = rls_pb2.RateLimitRequest(domain=domain, hits_addend=hits)
    for d in descriptors:
        entries = dict(d)
        own_hits = entries.pop("hits", None)
        descriptor = ratelimit_pb2.RateLimitDescriptor(
            entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries.items()]
        )
        if own_hits is not None:
            descriptor.hits_addend.value = own_hits
        out.descriptors.append(descriptor)
    return out


def rls(gw: InProcessGateway) -> Any:
    """A RateLimitService stub on the gateway's own channel."""
    return rls_pb2_grpc.RateLimitServiceStub(gw.channel)


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer() as emu:
        yield emu


@pytest.fixture
async def make_gateway(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[StartGateway]:
    """Starts gateways in front of the emulator with LIMITS plus `config`; closes them after the test."""
    started: list[InProcessGateway] = []

    async def start(config: str = "", redis_url: str = "", limits: str = LIMITS) -> InProcessGateway:
        path = write_config(tmp_path, limits + config)
        gw = await start_gateway(toloka_url=emulator.url, config_path=path, redis_url=redis_url)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        await gw.close()


@pytest.fixture
async def slow_redis_url(redis_proc: RedisServer) -> AsyncIterator[str]:
    """The session's redis-server behind a proxy that holds every reply for SLOW_REDIS_S: a Redis
    that answers, but later than the rate-limit service's budget."""
    redis_proc.cli("FLUSHALL")

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)  # the latency under test, not a wait for an event
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", redis_proc.port)
        await asyncio.gather(pipe(client_reader, writer, 0.0), pipe(reader, client_writer, SLOW_REDIS_S))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    server.close()
