"""ImportTasks over real gRPC in front of the emulator over real HTTP: batches, derived ids, re-sends,
the 1 MiB cut, bad input, the deadline, and a replica SIGKILLed mid-import (real Redis, 2 processes)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.bulk_import import batch_operation_id
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.support.gateway_harness import (
    GatewayProcess,
    InProcessGateway,
    rich_status,
    start_gateway,
    write_config,
)
from tests.support.redis_servers import RedisServer

POOL = "1"


def task(n: int, *, text: str = "") -> pb.Task:
    t = pb.Task(pool_id=POOL, overlap=1)
    t.input_values.update({"image": f"https://example.com/{n}.png", **({"text": text} if text else {})})
    return t


def stream(
    operation_id: str, count: int, *, chunk: int = 1000, batch_size: int = 0, text: str = ""
) -> Iterator[pb.ImportTasksRequest]:
    yield pb.ImportTasksRequest(
        options=pb.ImportTasksOptions(operation_id=operation_id, batch_size=batch_size)
    )
    for start in range(0, count, chunk):
        tasks = [task(n, text=text) for n in range(start, min(start + chunk, count))]
        yield pb.ImportTasksRequest(chunk=pb.TaskChunk(tasks=tasks))


async def run_import(
    stub: pb_grpc.TolokaGatewayStub, requests: Iterator[pb.ImportTasksRequest], *, deadline_s: float = 60
) -> tuple[list[pb.ImportedBatch], pb.ImportSummary | None]:
    batches: list[pb.ImportedBatch] = []
    summary = None
    async for reply in stub.ImportTasks(
        requests, metadata=(("x-caller-id", "importer"),), timeout=deadline_s
    ):
        if reply.WhichOneof("part") == "batch":
            batches.append(reply.batch)
        else:
            summary = reply.summary
    return batches, summary


def task_posts(emulator: EmulatorServer) -> list[str]:
    return [
        r.operation_id for r in emulator.state.requests if r.method == "POST" and r.path == "/api/v1/tasks"
    ]


def task_post_times(emulator: EmulatorServer) -> list[float]:
    return [r.monotonic for r in emulator.state.requests if r.method == "POST" and r.path == "/api/v1/tasks"]


async def until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    """Wait until `condition` holds (checked every 10 ms), failing after `within_s`."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - the emulator log has no event hook
            await asyncio.sleep(0.01)


def created_images(emulator: EmulatorServer) -> list[str]:
    return [t["input_values"]["image"] for t in emulator.state.tasks.values() if t["pool_id"] == POOL]


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    """Operations finish at once: what is checked is which tasks exist, not when."""
    async with EmulatorServer(EmulatorState(operation_duration_s=0.0)) as emu:
        yield emu


async def test_a_stream_is_cut_into_batches_with_derived_ids_and_each_task_is_created_once(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    before = len(created_images(emulator))
    op = str(uuid.uuid4())
    batches, summary = await run_import(gw.stub, stream(op, 25_000, chunk=3_000))
    assert [(b.index, b.first_task_index, b.task_count) for b in batches] == [
        (0, 0, 10_000),
        (1, 10_000, 10_000),
        (2, 20_000, 5_000),
    ]
    assert [b.operation_id for b in batches] == [batch_operation_id(op, i) for i in range(3)]
    assert all(b.operation.id == b.operation_id and not b.replayed for b in batches)
    assert summary == pb.ImportSummary(batches=3, tasks_sent=25_000, tasks_replayed=0, complete=True)
    assert task_posts(emulator) == [batch_operation_id(op, i) for i in range(3)]
    images = created_images(emulator)[before:]
    assert sorted(images) == sorted(f"https://example.com/{n}.png" for n in range(25_000))

    again, summary = await run_import(gw.stub, stream(op, 25_000, chunk=7_000))  # other chunks, same stream
    assert [b.operation_id for b in again] == [b.operation_id for b in batches] and all(
        b.replayed for b in again
    )
    assert summary == pb.ImportSummary(batches=3, tasks_sent=0, tasks_replayed=25_000, complete=True)
    assert len(task_posts(emulator)) == 3 and len(created_images(emulator)) == before + 25_000


async def test_a_batch_is_cut_before_its_input_values_pass_one_mebibyte(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    text = "x" * 100_000  # about 100 KB of input_values per task: ten fill a mebibyte
    batches, summary = await run_import(gw.stub, stream(str(uuid.uuid4()), 25, chunk=25, text=text))
    assert summary is not None and summary.complete and summary.tasks_sent == 25
    assert [b.task_count for b in batches] == [10, 10, 5]  # 11 would pass 1 MiB
    assert len(task_posts(emulator)) == 3


async def test_bad_input_ends_the_stream_with_invalid_argument_naming_where(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    chunk_first = iter([pb.ImportTasksRequest(chunk=pb.TaskChunk(tasks=[task(0)]))])
    with pytest.raises(grpc.aio.AioRpcError) as no_options:
        await run_import(gw.stub, chunk_first)
    assert no_options.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich_status(no_options.value)["BadRequest"].field_violations[0].field == "options"

    with pytest.raises(grpc.aio.AioRpcError) as bad_id:
        await run_import(gw.stub, stream("not-a-uuid", 10))
    assert bad_id.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rich_status(bad_id.value)["BadRequest"].field_violations[0].field == "options.operation_id"

    def with_a_bad_task() -> Iterator[pb.ImportTasksRequest]:
        for request in stream(str(uuid.uuid4()), 12_000, chunk=1_000, batch_size=5_000):
            if request.WhichOneof("part") == "chunk" and request.chunk.tasks[0].input_values[
                "image"
            ].endswith("/7000.png"):
                request.chunk.tasks[345].overlap = -1  # stream index 7,345, in batch 1
            yield request

    with pytest.raises(grpc.aio.AioRpcError) as bad_task:
        await run_import(gw.stub, with_a_bad_task())
    status = rich_status(bad_task.value)
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT
    assert status["BadRequest"].field_violations[0].field == "tasks[7345].overlap"
    assert status["ErrorInfo"].metadata["stream_index"] == "7345"
    assert len(task_posts(emulator)) == 1  # batch 0 went; batch 1 and everything after did not


async def test_the_deadline_ends_an_import_cleanly_with_a_summary_of_what_went(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    # 12,000 tasks a minute: batch 0 (10,000) goes, batch 1 waits for capacity past the deadline.
    config = (
        '[rate_limits]\nmax_wait = "30s"\nlimits = [\n'
        '  {name = "import_test", kinds = ["create_tasks"], capacity = 12000, period = "1m", unit = "tasks"},\n]\n'
    )
    gw = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, config))
    try:
        batches, summary = await run_import(gw.stub, stream(str(uuid.uuid4()), 25_000), deadline_s=2.0)
    finally:
        await gw.close()
    assert [b.task_count for b in batches] == [10_000]
    assert summary == pb.ImportSummary(batches=1, tasks_sent=10_000, complete=False, next_task_index=10_000)
    assert len(task_posts(emulator)) == 1


async def test_a_replica_killed_mid_import_loses_nothing_and_duplicates_nothing_when_resent_elsewhere(
    emulator: EmulatorServer, redis_proc: RedisServer, tmp_path: Path
) -> None:
    redis_proc.cli("FLUSHALL")
    env = {
        "TOLOKA_URL": emulator.url,
        "TOLOKA_API_KEY": "fleet-key",
        "REDIS_URL": redis_proc.url,
        "GATEWAY_CONFIG": write_config(tmp_path),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    first, second = (GatewayProcess(env=dict(env)).start(tmp_path) for _ in range(2))
    try:
        await asyncio.gather(first.wait_serving(), second.wait_serving())
        op = str(uuid.uuid4())
        async with grpc.aio.insecure_channel(first.target) as channel:
            call = pb_grpc.TolokaGatewayStub(channel).ImportTasks(
                stream(op, 30_000), metadata=(("x-caller-id", "importer"),), timeout=60
            )
            reply = await call.read()  # batch 0 accepted
            assert isinstance(reply, pb.ImportTasksResponse) and reply.batch.index == 0
            first.signal(signal.SIGKILL)
            with pytest.raises(grpc.aio.AioRpcError):
                while await call.read() is not grpc.aio.EOF:
                    pass
        async with grpc.aio.insecure_channel(second.target) as channel:
            batches, summary = await run_import(pb_grpc.TolokaGatewayStub(channel), stream(op, 30_000))
        assert summary is not None and summary.complete and summary.batches == 3
        assert batches[0].replayed and summary.tasks_replayed + summary.tasks_sent == 30_000
        images = created_images(emulator)
        wanted = {f"https://example.com/{n}.png" for n in range(30_000)}
        assert len([i for i in images if i in wanted]) == 30_000 and wanted <= set(images)
    finally:
        first.stop()
        second.stop()


async def test_the_same_operation_id_with_a_different_stream_is_refused(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    op = str(uuid.uuid4())
    await run_import(gw.stub, stream(op, 10))
    different = stream(op, 10, text="another stream")
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await run_import(gw.stub, different)
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert len(task_posts(emulator)) == 1


async def test_one_pool_per_batch_cuts_a_batch_where_the_pool_changes(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    def two_pools() -> Iterator[pb.ImportTasksRequest]:
        options = pb.ImportTasksOptions(operation_id=str(uuid.uuid4()), one_pool_per_batch=True)
        yield pb.ImportTasksRequest(options=options)
        tasks = [task(n) for n in range(30)]
        for t in tasks[10:20]:
            t.pool_id = "4"
        yield pb.ImportTasksRequest(chunk=pb.TaskChunk(tasks=tasks))

    batches, summary = await run_import(gw.stub, two_pools())
    assert summary is not None and summary.complete and summary.tasks_sent == 30
    assert [(b.first_task_index, b.task_count) for b in batches] == [(0, 10), (10, 10), (20, 10)]
    mixed, _ = await run_import(gw.stub, stream(str(uuid.uuid4()), 30))  # without the option: one batch
    assert [b.task_count for b in mixed] == [30]


async def test_batches_are_cut_before_the_solutions_pass_their_bound_too(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    # 10,000 valid training tasks, ~480 bytes of known solution each: one batch would carry over
    # 4 MiB of output_values, which one request may not; the import cuts before it.
    def training() -> Iterator[pb.ImportTasksRequest]:
        yield pb.ImportTasksRequest(options=pb.ImportTasksOptions(operation_id=str(uuid.uuid4())))
        tasks = []
        for n in range(10_000):
            t = task(n)
            t.known_solutions.add(correctness_weight=1).output_values.update({"label": "x" * 470})
            tasks.append(t)
        yield pb.ImportTasksRequest(chunk=pb.TaskChunk(tasks=tasks))

    batches, summary = await run_import(gw.stub, training())
    assert summary is not None and summary.complete and summary.tasks_sent == 10_000
    assert len(batches) == 2 and sum(b.task_count for b in batches) == 10_000


async def test_the_default_batch_is_the_servers_tasks_per_request(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    config = "[server]\nmax_tasks_per_request = 5000\n"
    gw = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, config))
    try:
        batches, summary = await run_import(gw.stub, stream(str(uuid.uuid4()), 6_000))
        assert [b.task_count for b in batches] == [5_000, 1_000]
        assert summary is not None and summary.complete
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await run_import(gw.stub, stream(str(uuid.uuid4()), 10, batch_size=6_000))
        assert rich_status(too_big.value)["BadRequest"].field_violations[0].field == "options.batch_size"
    finally:
        await gw.close()


async def test_the_first_refusal_in_stream_order_is_the_one_answered(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    bad = pb.Task(pool_id=POOL, overlap=1)  # no input_values: batch 0 is refused
    requests = [
        pb.ImportTasksRequest(options=pb.ImportTasksOptions(operation_id=str(uuid.uuid4()), batch_size=2)),
        pb.ImportTasksRequest(chunk=pb.TaskChunk(tasks=[task(0), bad, task(2), task(3)])),
        pb.ImportTasksRequest(
            options=pb.ImportTasksOptions(operation_id=str(uuid.uuid4()))
        ),  # also bad, later
    ]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await run_import(gw.stub, iter(requests))
    status = rich_status(refused.value)
    assert status["ErrorInfo"].metadata["stream_index"] == "1"
    assert task_posts(emulator) == []


async def test_a_batch_is_answered_at_once_and_the_deadline_ends_a_stalled_stream_with_a_summary(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[pb.ImportTasksRequest]:
        options = pb.ImportTasksOptions(operation_id=str(uuid.uuid4()), batch_size=2)
        yield pb.ImportTasksRequest(options=options)
        yield pb.ImportTasksRequest(chunk=pb.TaskChunk(tasks=[task(0), task(1), task(2)]))
        await never.wait()  # the caller goes quiet with task 2 read but its batch not whole

    replies = []
    async for reply in gw.stub.ImportTasks(stalls(), metadata=(("x-caller-id", "importer"),), timeout=1.5):
        replies.append(reply)
    assert [r.WhichOneof("part") for r in replies] == ["batch", "summary"]
    assert replies[0].batch.task_count == 2 and not replies[0].batch.replayed
    assert replies[1].summary == pb.ImportSummary(batches=1, tasks_sent=2, complete=False, next_task_index=2)
    assert len(task_posts(emulator)) == 1


async def test_two_batches_are_in_flight_at_once_and_are_answered_in_stream_order(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    # Batch 0's answer is held back for a second after Toloka accepted it.
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", latency_after_work_s=1.0))
    op = str(uuid.uuid4())
    batches, summary = await run_import(gw.stub, stream(op, 30_000))
    assert [b.index for b in batches] == [0, 1, 2]  # batch 1 was accepted first, answered second
    assert summary == pb.ImportSummary(batches=3, tasks_sent=30_000, complete=True)
    first, second, third = task_post_times(emulator)
    assert second - first < 1.0  # batch 1 went while batch 0 was in flight
    assert third - first >= 1.0  # batch 2 waited for a slot: two in flight at most
    assert sorted(created_images(emulator)[-30_000:]) == sorted(
        f"https://example.com/{n}.png" for n in range(30_000)
    )


async def test_a_replica_killed_with_two_batches_in_flight_loses_nothing_and_duplicates_nothing(
    emulator: EmulatorServer, redis_proc: RedisServer, tmp_path: Path
) -> None:
    redis_proc.cli("FLUSHALL")
    env = {
        "TOLOKA_URL": emulator.url,
        "TOLOKA_API_KEY": "fleet-key",
        "REDIS_URL": redis_proc.url,
        "GATEWAY_CONFIG": write_config(tmp_path, "[dedupe]\nlease_s = 1.0\n"),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    # Batch 0 is answered; batches 1 and 2 are accepted by Toloka, their answers never arrive.
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$"))
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=2, latency_after_work_s=60))
    first, second = (GatewayProcess(env=dict(env)).start(tmp_path) for _ in range(2))
    try:
        await asyncio.gather(first.wait_serving(), second.wait_serving())
        op = str(uuid.uuid4())
        async with grpc.aio.insecure_channel(first.target) as channel:
            call = pb_grpc.TolokaGatewayStub(channel).ImportTasks(
                stream(op, 30_000), metadata=(("x-caller-id", "importer"),), timeout=60
            )
            reply = await call.read()
            assert isinstance(reply, pb.ImportTasksResponse) and reply.batch.index == 0
            await until(lambda: len(task_posts(emulator)) == 3)  # batches 1 and 2 in flight
            first.signal(signal.SIGKILL)
            with pytest.raises(grpc.aio.AioRpcError):
                while await call.read() is not grpc.aio.EOF:
                    pass
        async with grpc.aio.insecure_channel(second.target) as channel:
            batches, summary = await run_import(pb_grpc.TolokaGatewayStub(channel), stream(op, 30_000))
        assert [b.operation_id for b in batches] == [batch_operation_id(op, i) for i in range(3)]
        assert summary is not None and summary.complete and batches[0].replayed
        assert summary.tasks_replayed + summary.tasks_sent == 30_000
        images = created_images(emulator)
        wanted = {f"https://example.com/{n}.png" for n in range(30_000)}
        assert len([i for i in images if i in wanted]) == 30_000 and wanted <= set(images)
    finally:
        first.stop()
        second.stop()
