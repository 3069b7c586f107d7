"""The drain delay of `toloka-gateway serve`: after SIGTERM, NOT_SERVING while still serving, then stop."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.emulator.server import EmulatorServer
from gateway.translate.values import json_to_struct
from tests.support.gateway_harness import GatewayProcess, write_config

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVE = [sys.executable, "-m", "gateway", "serve"]


def create_request() -> pb.CreateTasksRequest:
    t = pb.Task(pool_id="1", overlap=1)
    json_to_struct({"image": "https://example.com/1.png"}, t.input_values)
    return pb.CreateTasksRequest(tasks=[t], operation_id=str(uuid.uuid4()))


async def started(
    emulator: EmulatorServer, tmp_path: Path, env: dict[str, str], flags: list[str]
) -> GatewayProcess:
    base = {
        "TOLOKA_URL": emulator.url,
        "TOLOKA_API_KEY": "drain-test",
        "GATEWAY_CONFIG": write_config(tmp_path),
    }
    proc = GatewayProcess(env={**base, **env}, command=[*SERVE, *flags]).start(tmp_path)
    await proc.wait_serving()
    return proc


async def sigterm_and_see_not_serving(proc: GatewayProcess, channel: grpc.aio.Channel) -> None:
    """Send SIGTERM and return once the health stream reports NOT_SERVING (the event, not a sleep)."""
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=10)
    first = await watch.read()  # subscribed: the change cannot slip past between signal and watch
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    proc.signal(signal.SIGTERM)
    while True:
        reply = await watch.read()
        assert reply is not grpc.aio.EOF, "the health stream ended before NOT_SERVING"
        if reply.status == NOT_SERVING:
            break
    watch.cancel()


@pytest.mark.slow
async def test_gateway_keeps_serving_and_answers_not_serving_when_sigterm_starts_the_delay(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    delay = 3.0
    proc = await started(emulator, tmp_path, {"GATEWAY_SHUTDOWN_DELAY": f"{delay}s"}, [])
    try:
        async with grpc.aio.insecure_channel(proc.target) as channel:
            signalled_at = time.monotonic()
            await sigterm_and_see_not_serving(proc, channel)
            # Inside the delay: new calls are still served, and every health check says NOT_SERVING.
            resp = await pb_grpc.TolokaGatewayStub(channel).CreateTasks(create_request(), timeout=5)
            assert resp.operation.id
            check = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert check.status == NOT_SERVING
            assert time.monotonic() - signalled_at < delay, "the checks above must run inside the delay"
        assert await asyncio.to_thread(proc.wait, 30) == 0
        assert time.monotonic() - signalled_at >= delay
        logs = proc.logs()
        assert logs.index("still serving") < logs.index("draining") < logs.index("stopped")
    finally:
        proc.stop()


@pytest.mark.slow
async def test_flag_wins_over_the_environment_when_both_set_the_delay(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    proc = await started(emulator, tmp_path, {"GATEWAY_SHUTDOWN_DELAY": "10m"}, ["--shutdown-delay", "100ms"])
    try:
        async with grpc.aio.insecure_channel(proc.target) as channel:
            await sigterm_and_see_not_serving(proc, channel)
        # A 10-minute delay would outlast this wait by far.
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        proc.stop()


@pytest.mark.slow
async def test_second_signal_ends_the_delay_when_sent_during_it(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    proc = await started(emulator, tmp_path, {"GATEWAY_SHUTDOWN_DELAY": "10m"}, [])
    try:
        async with grpc.aio.insecure_channel(proc.target) as channel:
            await sigterm_and_see_not_serving(proc, channel)
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        proc.stop()
