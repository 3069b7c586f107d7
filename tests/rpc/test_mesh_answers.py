"""Answers a service mesh can act on: quota refusals Envoy does not retry, waits within Envoy's per-try timeout.

Envoy retries RESOURCE_EXHAUSTED under common retry policies unless the response carries
`x-envoy-ratelimited`, and it cuts a try after its per-try timeout, which it sends upstream in
`x-envoy-expected-rq-timeout-ms`: the gateway must answer before then.
"""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import duration_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.state import EmulatorState
from tests.rpc.conftest import Start, create_request
from tests.support.gateway_harness import InProcessGateway, rich_status

MESH_TIMEOUT = "x-envoy-expected-rq-timeout-ms"
RATELIMITED = ("x-envoy-ratelimited", "true")
# One task creation per 20 s; a call may wait up to 30 s for capacity.
TINY_QUOTA = """
[rate_limits]
max_wait = "30s"
limits = [{name = "tiny", kinds = ["create_tasks"], capacity = 1, period = "20s"}]
"""


@pytest.fixture
def emulator_state() -> EmulatorState:
    """Task operations that outlast every wait in these tests."""
    return EmulatorState(operation_duration_s=3600, pool_operation_duration_s=0.05)


async def created_operation(gw: InProcessGateway) -> str:
    return (await gw.stub.CreateTasks(create_request(), metadata=gw.md(), timeout=10)).operation_id


def wait_request(operation_id: str, seconds: int) -> pb.WaitOperationRequest:
    return pb.WaitOperationRequest(operation_id=operation_id, timeout=duration_pb2.Duration(seconds=seconds))


async def test_quota_refusal_carries_envoy_ratelimited_and_retry_info_when_no_capacity_comes_in_time(
    start: Start,
) -> None:
    gw = await start(TINY_QUOTA.replace('max_wait = "30s"', 'max_wait = "0s"'))
    await created_operation(gw)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(create_request(), metadata=gw.md(), timeout=10)
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details["ErrorInfo"].reason == "RATE_LIMITED"
    assert details["RetryInfo"].retry_delay.ToTimedelta().total_seconds() > 0
    assert RATELIMITED in tuple(info.value.trailing_metadata() or ())


async def test_other_refusals_carry_no_envoy_ratelimited_when_not_resource_exhausted(start: Start) -> None:
    gw = await start()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(pb.CreateTasksRequest(), metadata=gw.md(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "x-envoy-ratelimited" not in dict(info.value.trailing_metadata() or ())


async def test_wait_answers_not_done_within_the_mesh_timeout_when_the_grpc_deadline_is_later(
    start: Start,
) -> None:
    gw = await start()
    operation_id = await created_operation(gw)
    started = time.monotonic()
    reply = await gw.stub.WaitOperation(
        wait_request(operation_id, 20), metadata=(*gw.md(), (MESH_TIMEOUT, "1500")), timeout=30
    )
    elapsed = time.monotonic() - started
    assert not reply.done
    assert 1.0 < elapsed < 1.5


async def test_quota_wait_is_refused_within_the_mesh_timeout_when_capacity_comes_later(start: Start) -> None:
    gw = await start(TINY_QUOTA)
    await created_operation(gw)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(create_request(), metadata=(*gw.md(), (MESH_TIMEOUT, "1500")), timeout=30)
    assert time.monotonic() - started < 1.5
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED, details["message"]
    assert "RetryInfo" in details
    assert RATELIMITED in tuple(info.value.trailing_metadata() or ())


@pytest.mark.parametrize("value", ["abc", "0", "-1500", "1.5e3", "", "99999999999999999999"])
async def test_mesh_timeout_is_ignored_when_malformed_or_not_positive(start: Start, value: str) -> None:
    gw = await start()
    operation_id = await created_operation(gw)
    started = time.monotonic()
    reply = await gw.stub.WaitOperation(
        wait_request(operation_id, 1), metadata=(*gw.md(), (MESH_TIMEOUT, value)), timeout=30
    )
    assert not reply.done
    assert time.monotonic() - started >= 0.95  # the request's own 1 s timeout, not the header, ended it
