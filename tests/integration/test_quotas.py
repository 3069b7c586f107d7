"""Per-caller quotas over gRPC: one caller cannot starve another, refusals say which limit and when."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from tests.support.gateway_harness import InProcessGateway, rich_status, start_gateway, write_config

QUOTAS = """
[rate_limits]
max_wait = "0s"
[[rate_limits.callers.greedy]]
name = "greedy_tasks_per_minute"
kinds = ["create_tasks"]
capacity = 2
period = "1m"
unit = "tasks"
"""


@pytest.fixture
async def gw_quota(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    handle = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, QUOTAS))
    yield handle
    await handle.close()


def create(n: int) -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    for i in range(n):
        req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": f"u{i}"})
    return req


def posts(emulator: EmulatorServer) -> int:
    return sum(1 for r in emulator.state.requests if r.path == "/api/v1/tasks")


async def test_callers_quota_refuses_it_and_not_others_when_used_up(
    gw_quota: InProcessGateway, emulator: EmulatorServer
) -> None:
    await gw_quota.stub.CreateTasks(create(2), metadata=gw_quota.md("greedy"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw_quota.stub.CreateTasks(create(1), metadata=gw_quota.md("greedy"))
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 50 <= details["RetryInfo"].retry_delay.seconds <= 60
    assert "greedy" in details["QuotaFailure"].violations[0].subject
    assert posts(emulator) == 1
    await gw_quota.stub.CreateTasks(create(5), metadata=gw_quota.md("modest"))  # others are unaffected
    assert posts(emulator) == 2


async def test_request_larger_than_the_quota_gets_no_retry_info_when_it_can_never_fit(
    gw_quota: InProcessGateway, emulator: EmulatorServer
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw_quota.stub.CreateTasks(create(3), metadata=gw_quota.md("greedy"))
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "RetryInfo" not in details and details["QuotaFailure"].violations
    assert posts(emulator) == 0
