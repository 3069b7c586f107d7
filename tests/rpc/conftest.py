"""Real gateways over real gRPC in front of the emulator over real HTTP, started per test with the
configuration each test needs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

Start = Callable[..., Awaitable[InProcessGateway]]
SERVICE = "/toloka.gateway.v1.TolokaGateway/"


@pytest.fixture
def emulator_state() -> EmulatorState:
    """The emulator's state: task operations take 0.3 s unless a test changes the knob."""
    return EmulatorState(operation_duration_s=0.3, pool_operation_duration_s=0.05)


@pytest.fixture
async def emulator(emulator_state: EmulatorState) -> AsyncIterator[EmulatorServer]:
    """The Toloka emulator on a free port."""
    async with EmulatorServer(emulator_state) as emu:
        yield emu


@pytest.fixture
async def start(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[Start]:
    """Starts gateways in front of the emulator with extra config text; closes them afterwards."""
    started: list[InProcessGateway] = []

    async def go(config: str = "") -> InProcessGateway:
        handle = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, config))
        started.append(handle)
        return handle

    yield go
    for handle in started:
        await handle.close()


def create_request(pool_id: str = "1", *, async_mode: bool = True) -> pb.CreateTasksRequest:
    """A valid CreateTasks request with one task."""
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()), async_mode=async_mode)
    req.tasks.add(pool_id=pool_id, overlap=1).input_values.update({"image": "https://example.com/1.png"})
    return req


def raw_method(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    """A method that sends and returns raw bytes, so a test can send what no stub would."""
    return channel.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)


def calls_counted(gw: InProcessGateway, method: str, code: str) -> float:
    """The gateway's `calls` counter for a method and status code, read from its metrics exposition."""
    wanted = f'toloka_gateway_calls_total{{code="{code}",method="{method}"}} '
    for line in gw.gateway.metrics.render().decode().splitlines():
        if line.startswith(wanted):
            return float(line[len(wanted) :])
    return 0.0


def metric_value(gw: InProcessGateway, name: str) -> float:
    """An unlabelled metric's value from the gateway's metrics exposition."""
    for line in gw.gateway.metrics.render().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported")
