"""WaitOperation, GetOperation and WatchOperation end to end against the emulator."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from google.protobuf import duration_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer
from tests.support.gateway_harness import InProcessGateway, rich_status


def polls(emulator: EmulatorServer, op_id: str) -> int:
    return sum(
        1 for r in emulator.state.requests if r.method == "GET" and r.path == f"/api/v1/operations/{op_id}"
    )


async def create(gw: InProcessGateway, *tasks: dict[str, object], skip_invalid: bool = False) -> str:
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()), skip_invalid_items=skip_invalid)
    for values in tasks or ({"image": "a"},):
        t = req.tasks.add(pool_id=str(values.pop("pool_id", "1")), overlap=1)
        t.input_values.update(values)
    resp = await gw.stub.CreateTasks(req, metadata=gw.md())
    return resp.operation_id


def wait_req(op_id: str, seconds: float | None = None, log: bool = False) -> pb.WaitOperationRequest:
    req = pb.WaitOperationRequest(operation_id=op_id, include_log=log)
    if seconds is not None:
        req.timeout.CopyFrom(duration_pb2.Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9)))
    return req


async def test_timeout_returns_the_running_state_when_not_finished(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.operation_duration_s = 30
    op_id = await create(gw)
    started = time.monotonic()
    resp = await gw.stub.WaitOperation(wait_req(op_id, 0.4), metadata=gw.md())
    assert not resp.done
    assert resp.operation.status in (pb.OPERATION_STATUS_PENDING, pb.OPERATION_STATUS_RUNNING)
    assert 0.35 < time.monotonic() - started < 2


async def test_rpc_deadline_wins_when_shorter_than_timeout(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.operation_duration_s = 30
    op_id = await create(gw)
    started = time.monotonic()
    resp = await gw.stub.WaitOperation(wait_req(op_id, 20), metadata=gw.md(), timeout=0.6)
    assert not resp.done and time.monotonic() - started < 1.0


async def test_wait_returns_the_final_state_with_the_log_when_finished(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    op_id = await create(
        gw, {"image": "a"}, {"image": "b", "pool_id": "999"}, {"image": "c"}, skip_invalid=True
    )
    resp = await gw.stub.WaitOperation(wait_req(op_id, 10, log=True), metadata=gw.md())
    assert resp.done and resp.operation.status == pb.OPERATION_STATUS_SUCCESS
    assert sorted(resp.log.items) == [0, 2] and all(resp.log.items[i].id for i in (0, 2))
    assert list(resp.log.validation_errors) == [1]
    assert resp.log.validation_errors[1].errors[0].field.startswith("pool_id")


async def test_final_state_answers_without_an_upstream_call_when_cached(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    op_id = await create(gw)
    first = await gw.stub.WaitOperation(wait_req(op_id, 10), metadata=gw.md())
    assert first.done
    before = polls(emulator, op_id)
    again = await gw.stub.WaitOperation(wait_req(op_id, 10), metadata=gw.md())
    got = await gw.stub.GetOperation(pb.GetOperationRequest(operation_id=op_id), metadata=gw.md())
    assert again.done and got.operation.status == pb.OPERATION_STATUS_SUCCESS
    assert polls(emulator, op_id) == before


async def test_failed_operation_is_reported_when_toloka_fails_it(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    op_id = await create(gw, {"image": "a", "pool_id": "999"})  # nothing valid, skip_invalid_items false
    resp = await gw.stub.WaitOperation(wait_req(op_id, 10, log=True), metadata=gw.md())
    assert resp.done and resp.operation.status == pb.OPERATION_STATUS_FAIL
    assert list(resp.log.validation_errors) == [0]


async def test_unknown_and_malformed_ids_are_refused_when_waited_on(gw: InProcessGateway) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.WaitOperation(wait_req(str(uuid.uuid4()), 1), metadata=gw.md())
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.WaitOperation(wait_req("not-an-id", 1), metadata=gw.md())
    assert rich_status(info.value)["BadRequest"].field_violations[0].field == "operation_id"


async def test_toloka_faults_during_polling_do_not_fail_waiters_when_transient(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.operation_duration_s = 1.0
    op_id = await create(gw)
    emulator.state.add_fault(Fault(method="GET", path="^/api/v1/operations/", times=3, status=503))
    emulator.state.add_fault(Fault(method="GET", path="^/api/v1/operations/", times=2, status=429))
    resp = await gw.stub.WaitOperation(wait_req(op_id, 15), metadata=gw.md())
    assert resp.done and resp.operation.status == pb.OPERATION_STATUS_SUCCESS


async def test_many_waiters_share_one_poll_loop_when_waiting_together(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.operation_duration_s = 1.5
    op_id = await create(gw)
    replies = await asyncio.gather(
        *(gw.stub.WaitOperation(wait_req(op_id, 10), metadata=gw.md()) for _ in range(200))
    )
    assert all(r.done for r in replies)
    # One loop over ~1.5 s with a 0.5 s first interval and backoff: a handful of polls, not 200x.
    assert polls(emulator, op_id) <= 8


async def test_watch_streams_each_change_until_the_end_when_watched(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.operation_duration_s = 2.0
    op_id = await create(gw)
    updates = [
        u
        async for u in gw.stub.WatchOperation(pb.WatchOperationRequest(operation_id=op_id), metadata=gw.md())
    ]
    assert updates[-1].operation.status == pb.OPERATION_STATUS_SUCCESS
    seen = [(u.operation.status, u.operation.progress) for u in updates]
    assert len(seen) == len(set(seen)) >= 2


async def test_ten_thousand_item_log_is_returned_when_large(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.operation_duration_s = 0.2
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    for i in range(10_000):
        req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": f"u{i}"})
    op_id = (await gw.stub.CreateTasks(req, metadata=gw.md(), timeout=60)).operation_id
    resp = await gw.stub.WaitOperation(wait_req(op_id, 30, log=True), metadata=gw.md(), timeout=60)
    assert resp.done and len(resp.log.items) == 10_000
