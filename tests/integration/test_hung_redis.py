"""A Redis that accepts connections and never answers: calls stay within their own time, every time.

Timings here are real time on purpose: what is measured is how long a real gateway makes a
caller wait on a real (hung) socket.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import duration_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.emulator.server import EmulatorServer
from gateway.rework.pool_lock import build_pool_lock
from gateway.settings import ReworkSettings
from gateway.shared_state import SharedRedis, connect_redis
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

# One shared-state silence cut-off (0.5 s), paid once for every layer (they share one health),
# plus slack; before the layers shared it, the rate limiter's own 1 s timeout came on top.
FIRST_CALL_S = 1.2
LATER_CALL_S = 1.5


@pytest.fixture
async def gw_hung(
    emulator: EmulatorServer, hung_redis_url: str, tmp_path: Path
) -> AsyncIterator[InProcessGateway]:
    handle = await start_gateway(
        toloka_url=emulator.url, config_path=write_config(tmp_path), redis_url=hung_redis_url
    )
    yield handle
    await handle.close()


async def create(gw: InProcessGateway) -> tuple[pb.CreateTasksResponse, float]:
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
    started = time.monotonic()
    resp = await gw.stub.CreateTasks(req, metadata=gw.md(), timeout=10)
    return resp, time.monotonic() - started


async def wait_one_second(gw: InProcessGateway, op_id: str) -> tuple[pb.WaitOperationResponse, float]:
    req = pb.WaitOperationRequest(operation_id=op_id, timeout=duration_pb2.Duration(seconds=1))
    started = time.monotonic()
    resp = await gw.stub.WaitOperation(req, metadata=gw.md(), timeout=10)
    return resp, time.monotonic() - started


async def test_calls_return_real_results_in_time_every_time_when_redis_hangs(
    gw_hung: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.operation_duration_s = 30  # still running when each wait's timeout passes
    took: list[float] = []
    for attempt in range(3):
        created, create_s = await create(gw_hung)
        assert created.operation.id == created.operation_id
        waited, wait_s = await wait_one_second(gw_hung, created.operation_id)
        assert waited.operation.id == created.operation_id and not waited.done
        assert waited.operation.status in (pb.OPERATION_STATUS_PENDING, pb.OPERATION_STATUS_RUNNING)
        took += [create_s, wait_s]
        bound = FIRST_CALL_S if attempt == 0 else LATER_CALL_S
        assert create_s < bound and wait_s < bound, took
    # Later calls do not pay a Redis timeout again: CreateTasks is a Toloka round trip only.
    assert max(took[2::2]) < 0.5, took
    assert gw_hung.gateway.degraded


async def test_pool_lock_falls_back_to_the_local_lock_once_when_redis_hangs(hung_redis_url: str) -> None:
    shared = SharedRedis(connect_redis(hung_redis_url))
    lock = build_pool_lock(ReworkSettings(lock_wait_s=5.0), shared)
    try:
        took = []
        for _ in range(3):
            started = time.monotonic()
            async with lock.hold("9", call=Call(deadline=time.monotonic() + 5)):
                took.append(time.monotonic() - started)
        assert lock.degraded
        assert took[0] < 0.9 and max(took[1:]) < 0.05, took  # one op timeout, then Redis is skipped
    finally:
        await lock.close()
        await shared.close()
