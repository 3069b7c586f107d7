"""The mesh: one emulator and three replicas on one Redis per module; a fresh Envoy per test.

`mesh` is the fixture tests use. Envoy's policy comes from the `envoy_options` fixture; a test changes it
with `@pytest.mark.parametrize("envoy_options", [EnvoyOptions(per_try_timeout_s=2.0)])`. Replicas a test
stopped or killed are started again on their ports before the next test's Envoy comes up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.mesh.harness import (
    API_KEY,
    MESH_CONFIG,
    OPERATION_DURATION_S,
    SHUTDOWN_DELAY,
    EmulatorControl,
    EmulatorProcess,
    Fleet,
    Mesh,
)
from tests.support.envoy import Envoy, EnvoyOptions
from tests.support.gateway_harness import write_config
from tests.support.redis_servers import RedisServer


@pytest.fixture(scope="module")
def mesh_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mesh")


@pytest.fixture(scope="module")
def emulator_process(mesh_dir: Path) -> Iterator[EmulatorProcess]:
    emulator = EmulatorProcess().start(mesh_dir)
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def fleet(emulator_process: EmulatorProcess, redis_proc: RedisServer, mesh_dir: Path) -> Iterator[Fleet]:
    """Three `python -m gateway serve` replicas sharing one Redis and the emulator."""
    redis_proc.cli("FLUSHALL")
    env = {
        "TOLOKA_URL": emulator_process.url,
        "TOLOKA_API_KEY": API_KEY,
        "REDIS_URL": redis_proc.url,
        "GATEWAY_CONFIG": write_config(mesh_dir, MESH_CONFIG),
        "GATEWAY_SHUTDOWN_DELAY": SHUTDOWN_DELAY,
        "GATEWAY_LOG_LEVEL": "INFO",
    }
    replicas = Fleet(env=env, log_dir=mesh_dir / "replicas")
    try:
        yield replicas.start()
    finally:
        replicas.stop()


@pytest.fixture
def envoy_options() -> EnvoyOptions:
    """The Istio-like policy of the issue: 2 retries, 5 s per try, gRPC health checks every second."""
    return EnvoyOptions()


@pytest.fixture
async def mesh(
    fleet: Fleet, emulator_process: EmulatorProcess, envoy_options: EnvoyOptions, tmp_path: Path
) -> AsyncIterator[Mesh]:
    """A fresh Envoy (policy from `envoy_options`) in front of all three replicas, each healthy in Envoy."""
    await asyncio.to_thread(fleet.revive)
    envoy = Envoy(upstreams=fleet.targets, options=envoy_options).start(tmp_path)
    try:
        await envoy.wait_ready(healthy=len(fleet.targets))
        async with (
            aiohttp.ClientSession() as http,
            grpc.aio.insecure_channel(envoy.target) as channel,
        ):
            emulator = EmulatorControl(emulator_process.url, http)
            await emulator.configure(operation_duration_s=OPERATION_DURATION_S)
            try:
                yield Mesh(
                    envoy=envoy, fleet=fleet, emulator=emulator, stub=pb_grpc.TolokaGatewayStub(channel)
                )
            finally:
                await emulator.clear_faults()
                await emulator.configure(operation_duration_s=OPERATION_DURATION_S)
    finally:
        envoy.stop()
