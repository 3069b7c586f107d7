"""The `toloka-gateway` command as a process: start-up lines, SIGTERM drain, no leaked secret."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from gateway.translate.values import json_to_struct
from tests.support.gateway_harness import GatewayProcess, write_config

SECRET = "SECRET-KEY-7d1f0c9e-do-not-log"


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(EmulatorState(operation_duration_s=0.2)) as emu:
        yield emu


def one_task() -> pb.CreateTasksRequest:
    t = pb.Task(pool_id="1", overlap=1)
    json_to_struct({"image": "a"}, t.input_values)
    return pb.CreateTasksRequest(tasks=[t], operation_id=str(uuid.uuid4()))


@pytest.mark.slow
async def test_sigterm_lets_an_in_flight_call_finish_when_draining(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    proc = GatewayProcess(
        env={"TOLOKA_URL": emulator.url, "TOLOKA_API_KEY": SECRET, "GATEWAY_CONFIG": write_config(tmp_path)}
    ).start(tmp_path)
    try:
        await proc.wait_serving()
        async with aiohttp.ClientSession() as http:
            fault = {"method": "POST", "path": "^/api/v1/tasks$", "times": 1, "latency_s": 1.5}
            assert (await http.post(f"{emulator.url}/_emulator/faults", json=fault)).status < 300
        async with grpc.aio.insecure_channel(proc.target) as channel:
            stub = pb_grpc.TolokaGatewayStub(channel)
            in_flight = asyncio.ensure_future(stub.CreateTasks(one_task(), timeout=10))
            # The emulator's request log has no event hook: poll it for "the request reached Toloka".
            while not any(r.path == "/api/v1/tasks" for r in emulator.state.requests):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            proc.signal(signal.SIGTERM)
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
            async for reply in watch:  # the stream's next message is the event we wait for
                if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
            watch.cancel()
            resp = await in_flight
            assert resp.operation.id
        assert await asyncio.to_thread(proc.wait, 20) == 0
        logs = proc.logs()
        assert "toloka-gateway serving" in logs and "draining" in logs
        assert SECRET not in logs
    finally:
        proc.stop()


@pytest.mark.slow
async def test_first_log_lines_say_emulator_and_in_process_state_when_unconfigured(tmp_path: Path) -> None:
    proc = GatewayProcess(env={"TOLOKA_API_KEY": "", "TOLOKA_URL": "", "REDIS_URL": ""}).start(tmp_path)
    try:
        await proc.wait_serving()
        async with grpc.aio.insecure_channel(proc.target) as channel:
            resp = await pb_grpc.TolokaGatewayStub(channel).CreateTasks(one_task(), timeout=10)
            assert resp.operation.id
        logs = proc.logs()
        assert "built-in emulator" in logs and "in-process" in logs
    finally:
        proc.stop()
