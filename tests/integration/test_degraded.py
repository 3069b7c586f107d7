"""Redis goes away mid-traffic: the gateway keeps serving in degraded mode, says so, and recovers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.app import REDIS_HEALTH_SERVICE
from gateway.emulator.server import EmulatorServer
from tests.support.gateway_harness import rich_status, start_gateway, write_config
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.slow


async def wait_for_health(channel: grpc.aio.Channel, service: str, wanted: int) -> None:
    """Block on the health Watch stream until `service` reports `wanted`."""
    stream = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=service), timeout=20
    )
    async for reply in stream:
        if reply.status == wanted:
            stream.cancel()
            return
    raise AssertionError(f"{service} never reported {wanted}")


async def test_calls_keep_succeeding_and_health_reports_it_when_redis_stops_and_returns(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    redis = RedisServer().start()
    gw = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path), redis_url=redis.url)
    try:

        async def create() -> pb.CreateTasksResponse:
            req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
            req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
            return await gw.stub.CreateTasks(req, metadata=gw.md(), timeout=10)

        await wait_for_health(gw.channel, REDIS_HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        assert (await create()).operation.id
        redis.stop()
        replies = await asyncio.gather(*(create() for _ in range(20)))  # served while Redis is down
        assert all(r.operation.id for r in replies)
        await wait_for_health(gw.channel, REDIS_HEALTH_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
        overall = await health_pb2_grpc.HealthStub(gw.channel).Check(health_pb2.HealthCheckRequest())
        assert overall.status == health_pb2.HealthCheckResponse.SERVING
        assert gw.gateway.degraded
        # Toloka does not dedupe synchronous creates and another replica may be sending the same
        # one: refused before anything leaves, with RetryInfo.
        sync_req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()), async_mode=False)
        sync_req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
        posts_before = sum(1 for r in emulator.state.requests if r.method == "POST")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.CreateTasks(sync_req, metadata=gw.md(), timeout=10)
        details = rich_status(info.value)
        assert details["code"] == grpc.StatusCode.UNAVAILABLE
        assert details["ErrorInfo"].reason == "SHARED_STATE_UNAVAILABLE" and "RetryInfo" in details
        assert sum(1 for r in emulator.state.requests if r.method == "POST") == posts_before
        redis.start()
        await wait_for_health(gw.channel, REDIS_HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        assert (await create()).operation.id
        assert not gw.gateway.degraded
    finally:
        await gw.close()
        redis.stop()
