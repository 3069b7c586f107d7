"""CreateTasks end to end: real gRPC, real gateway, the emulator over real HTTP."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer
from gateway.translate.values import json_to_struct
from tests.support.gateway_harness import InProcessGateway, rich_status, start_gateway


def task(pool_id: str = "1", **values: object) -> pb.Task:
    t = pb.Task(pool_id=pool_id, overlap=1)
    json_to_struct(values or {"image": "http://x/1.png"}, t.input_values)
    return t


def posts(emulator: EmulatorServer, operation_id: str | None = None) -> list[object]:
    return [
        r
        for r in emulator.state.requests
        if r.method == "POST"
        and r.path == "/api/v1/tasks"
        and (operation_id is None or r.operation_id == operation_id)
    ]


async def test_async_create_returns_the_operation_when_defaults(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    op_id = str(uuid.uuid4())
    resp = await gw.stub.CreateTasks(
        pb.CreateTasksRequest(tasks=[task(), task()], operation_id=op_id), metadata=gw.md()
    )
    assert resp.operation_id == op_id
    assert resp.WhichOneof("result") == "operation"
    assert resp.operation.id == op_id and resp.operation.type == "TASK.BATCH_CREATE"
    assert resp.operation.status in (pb.OPERATION_STATUS_PENDING, pb.OPERATION_STATUS_RUNNING)
    assert not resp.replayed
    [req] = posts(emulator, op_id)
    assert req.query["async_mode"] == "true"  # type: ignore[attr-defined]


async def test_sync_create_returns_tasks_and_errors_by_index_when_skip_invalid(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    bad = pb.Task(pool_id="999999")
    json_to_struct({"image": "x"}, bad.input_values)
    bad.overlap = 1
    req = pb.CreateTasksRequest(tasks=[task(), bad, task()], async_mode=False, skip_invalid_items=True)
    resp = await gw.stub.CreateTasks(req, metadata=gw.md())
    assert sorted(resp.batch.items) == [0, 2]
    assert all(resp.batch.items[i].id and resp.batch.items[i].pool_id == "1" for i in (0, 2))
    assert list(resp.batch.validation_errors) == [1]
    assert resp.batch.validation_errors[1].errors[0].field.startswith("pool_id")
    uuid.UUID(resp.operation_id)


async def test_toloka_validation_refusal_is_invalid_argument_with_field_paths_when_not_skipping(
    gw: InProcessGateway,
) -> None:
    bad = pb.Task(pool_id="999999", overlap=1)
    json_to_struct({"image": "x"}, bad.input_values)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(
            pb.CreateTasksRequest(tasks=[task(), bad], async_mode=False), metadata=gw.md()
        )
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.INVALID_ARGUMENT
    assert details["ErrorInfo"].metadata["toloka_code"] == "VALIDATION_ERROR"
    assert details["ErrorInfo"].metadata["toloka_request_id"]
    assert any(v.field.startswith("tasks[1].pool_id") for v in details["BadRequest"].field_violations)


async def test_bad_input_never_reaches_toloka_when_refused(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    cases = [
        pb.CreateTasksRequest(),
        pb.CreateTasksRequest(tasks=[task()], operation_id="nope"),
        pb.CreateTasksRequest(tasks=[pb.Task(input_values=task().input_values)]),
        pb.CreateTasksRequest(tasks=[task()] * 5001, async_mode=False),
        pb.CreateTasksRequest(tasks=[task(x="y" * 400_000)] * 3),
        pb.CreateTasksRequest(tasks=[pb.Task(pool_id="1", overlap=0, input_values=task().input_values)]),
    ]
    nan = task()
    nan.input_values.fields["v"].number_value = float("nan")
    cases.append(pb.CreateTasksRequest(tasks=[nan]))
    for req in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.CreateTasks(req, metadata=gw.md())
        details = rich_status(info.value)
        assert details["code"] == grpc.StatusCode.INVALID_ARGUMENT
        assert details["BadRequest"].field_violations
        assert "Traceback" not in (details["message"] or "")
    assert posts(emulator) == []


async def test_retry_resends_the_same_operation_id_when_toloka_fails_transiently(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=2, status=503))
    op_id = str(uuid.uuid4())
    resp = await gw.stub.CreateTasks(
        pb.CreateTasksRequest(tasks=[task()], operation_id=op_id), metadata=gw.md()
    )
    assert resp.operation.id == op_id
    sent = posts(emulator)
    assert len(sent) == 3 and {r.operation_id for r in sent} == {op_id}  # type: ignore[attr-defined]


async def test_existing_operation_is_returned_when_toloka_says_409(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    op_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as http:
        first = await http.post(
            f"{emulator.url}/api/v1/tasks",
            params={"async_mode": "true", "operation_id": op_id},
            json=[{"pool_id": "1", "input_values": {"image": "a"}, "overlap": 1}],
            headers={"Authorization": "OAuth other-client"},
        )
        assert first.status == 202
    resp = await gw.stub.CreateTasks(
        pb.CreateTasksRequest(tasks=[task()], operation_id=op_id), metadata=gw.md()
    )
    assert resp.operation.id == op_id
    gets = [
        r for r in emulator.state.requests if r.method == "GET" and r.path == f"/api/v1/operations/{op_id}"
    ]
    assert len(posts(emulator, op_id)) == 2 and len(gets) == 1


async def test_dropped_reply_is_settled_by_reading_the_operation_when_work_was_done(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, drop_after_work=True))
    op_id = str(uuid.uuid4())
    resp = await gw.stub.CreateTasks(
        pb.CreateTasksRequest(tasks=[task()], operation_id=op_id), metadata=gw.md()
    )
    assert resp.operation.id == op_id
    assert len(posts(emulator, op_id)) == 1  # settled by a read, not by a re-send
    assert any(r.method == "GET" and r.path == f"/api/v1/operations/{op_id}" for r in emulator.state.requests)


async def test_dropped_reply_before_work_is_resent_with_the_same_id_when_nothing_was_created(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, drop_before_work=True))
    op_id = str(uuid.uuid4())
    resp = await gw.stub.CreateTasks(
        pb.CreateTasksRequest(tasks=[task()], operation_id=op_id), metadata=gw.md()
    )
    assert resp.operation.id == op_id
    assert len(posts(emulator, op_id)) == 2


async def test_exhausted_retries_are_unavailable_with_retry_info_when_toloka_stays_down(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=None, status=500))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(pb.CreateTasksRequest(tasks=[task()]), metadata=gw.md())
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.UNAVAILABLE
    assert "RetryInfo" in details and details["ErrorInfo"].metadata["toloka_code"] == "INTERNAL_ERROR"
    assert len(posts(emulator)) == gw.gateway.settings.toloka.max_attempts


async def test_toloka_429_is_resource_exhausted_when_it_outlasts_the_deadline(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(
        Fault(method="POST", path="^/api/v1/tasks$", times=None, status=429, retry_after=30)
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(pb.CreateTasksRequest(tasks=[task()]), metadata=gw.md(), timeout=2)
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details["RetryInfo"].retry_delay.seconds >= 1


async def test_deadline_is_respected_when_toloka_is_slow(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=None, latency_s=5))
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(pb.CreateTasksRequest(tasks=[task()]), metadata=gw.md(), timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.5


@pytest.mark.slow
@pytest.mark.parametrize("deadline_s", [5.5, 7.3])
async def test_gateway_answers_with_error_info_before_the_deadline_when_it_is_over_five_seconds(
    emulator: EmulatorServer, tmp_path: Path, deadline_s: float
) -> None:
    # An HTTP timeout above 5 s must not be rounded up to a whole second (it would outlive the
    # deadline, and the caller would get a bare DEADLINE_EXCEEDED from gRPC with no details).
    config = tmp_path / "slow-toloka.toml"
    config.write_text("[toloka]\nrequest_timeout_s = 30\n")
    gw = await start_gateway(toloka_url=emulator.url, config_path=str(config))
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=None, latency_s=30))
    started = time.monotonic()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.CreateTasks(
                pb.CreateTasksRequest(tasks=[task()]), metadata=gw.md(), timeout=deadline_s
            )
    finally:
        elapsed = time.monotonic() - started
        await gw.close()
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert details["ErrorInfo"].reason == "DEADLINE_EXCEEDED"  # the gateway's answer, not gRPC's
    assert elapsed < deadline_s


async def test_health_and_reflection_answer_when_serving(gw: InProcessGateway) -> None:
    health = health_pb2_grpc.HealthStub(gw.channel)
    for service in ("", "toloka.gateway.v1.TolokaGateway"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(gw.channel)
    names: list[str] = []
    async for reply in stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    ):
        names.extend(s.name for s in reply.list_services_response.service)
    assert "toloka.gateway.v1.TolokaGateway" in names and "grpc.health.v1.Health" in names


async def test_ten_thousand_task_request_fits_the_message_size_when_async(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    tasks = [task(image=f"http://x/{i}.png", text="lorem ipsum " * 4) for i in range(10_000)]
    resp = await gw.stub.CreateTasks(pb.CreateTasksRequest(tasks=tasks), metadata=gw.md(), timeout=60)
    assert resp.operation.id
    [req] = posts(emulator)
    assert req.body_size > 1_000_000  # type: ignore[attr-defined]


async def test_sync_create_is_stored_as_unknown_and_replayed_not_resent_when_the_reply_is_lost(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, drop_after_work=True))
    req = pb.CreateTasksRequest(tasks=[task()], async_mode=False, operation_id=str(uuid.uuid4()))
    before = len(emulator.state.tasks)
    for _ in range(3):  # the caller's retries (or a mesh's) get the same answer
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.CreateTasks(req, metadata=gw.md())
        details = rich_status(info.value)
        assert details["code"] == grpc.StatusCode.FAILED_PRECONDITION  # not retryable: a person decides
        assert details["ErrorInfo"].reason == "TOLOKA_OUTCOME_UNKNOWN"
        assert details["ErrorInfo"].metadata["ambiguous"] == "true"
        assert "RetryInfo" not in details
        assert "new operation_id" in details["message"]
    assert len(posts(emulator)) == 1  # never re-sent blind
    assert len(emulator.state.tasks) == before + 1


async def test_sync_create_is_retried_when_toloka_did_not_act(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, status=429))
    resp = await gw.stub.CreateTasks(
        pb.CreateTasksRequest(tasks=[task()], async_mode=False), metadata=gw.md()
    )
    assert len(resp.batch.items) == 1 and len(posts(emulator)) == 2


async def test_long_retry_after_is_returned_to_the_caller_not_slept_when_over_the_backoff_cap(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(
        Fault(method="POST", path="^/api/v1/tasks$", times=1, status=429, retry_after=3600)
    )
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(pb.CreateTasksRequest(tasks=[task()]), metadata=gw.md())
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details["RetryInfo"].retry_delay.seconds == 3600
    assert time.monotonic() - started < 2 and len(posts(emulator)) == 1


async def test_gateway_stops_retrying_when_toloka_fails_most_requests(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=None, status=503))
    calls = 20
    for _ in range(calls):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.CreateTasks(pb.CreateTasksRequest(tasks=[task()]), metadata=gw.md(), timeout=10)
        details = rich_status(info.value)
        assert details["code"] == grpc.StatusCode.UNAVAILABLE and "RetryInfo" in details
    # Without a budget each call would make max_attempts (5) POSTs: 100. With it, the first call
    # retries while the budget lasts and the others make one attempt each.
    assert len(posts(emulator)) <= calls + 5
    assert details["ErrorInfo"].metadata["retries_throttled"] == "true"
    emulator.state.faults.clear()
    assert (await gw.stub.CreateTasks(pb.CreateTasksRequest(tasks=[task()]), metadata=gw.md())).operation.id


async def test_sync_create_slower_than_the_deadline_finishes_and_its_retry_gets_the_outcome(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    # Toloka does the work, but answers after the caller's deadline: cutting the request would
    # leave its outcome unknown for good, so the gateway lets it finish and keeps the answer.
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, latency_after_work_s=1.0))
    req = pb.CreateTasksRequest(tasks=[task()], async_mode=False, operation_id=str(uuid.uuid4()))
    before = len(emulator.state.tasks)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(req, metadata=gw.md(), timeout=0.5)
    assert time.monotonic() - started < 0.6
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.DEADLINE_EXCEEDED and "RetryInfo" in details
    retried = await gw.stub.CreateTasks(req, metadata=gw.md(), timeout=10)
    assert retried.replayed and len(retried.batch.items) == 1
    assert len(posts(emulator)) == 1 and len(emulator.state.tasks) == before + 1


async def test_mesh_retry_of_a_create_without_operation_id_is_a_duplicate_when_it_keeps_x_request_id(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    req = pb.CreateTasksRequest(tasks=[task()])  # no operation_id
    mesh = (*gw.md(), ("x-request-id", "7c1e0b6a-0d5b-4bbf-9d0e-3f1c2b4a5e6d"))
    first = await gw.stub.CreateTasks(req, metadata=mesh)
    again = await gw.stub.CreateTasks(req, metadata=mesh)  # Envoy's retry keeps x-request-id
    assert again.operation_id == first.operation_id and again.replayed
    assert len(posts(emulator)) == 1
    other = await gw.stub.CreateTasks(req, metadata=(*gw.md(), ("x-request-id", "another-request")))
    fresh = await gw.stub.CreateTasks(req, metadata=gw.md())  # no mesh id: a new operation each time
    assert len({first.operation_id, other.operation_id, fresh.operation_id}) == 3
    other_caller = await gw.stub.CreateTasks(req, metadata=(*gw.md("someone-else"), mesh[-1]))
    assert other_caller.operation_id != first.operation_id  # derived per caller
