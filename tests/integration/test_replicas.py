"""Several gateway processes on one real Redis (standalone and Cluster), one emulator: fleet-wide semantics."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.support.gateway_harness import GatewayProcess, rich_status, write_config
from tests.support.redis_servers import RedisCluster, RedisServer

pytestmark = pytest.mark.slow

FLEET_CONFIG = """
[dedupe]
lease_s = 1.5
[poller]
initial_interval_s = 0.3
max_interval_s = 1.0
lease_s = 1.5
"""


class Fleet:
    """Gateway processes sharing one Redis and one emulator, with a channel to each."""

    def __init__(self, procs: list[GatewayProcess]) -> None:
        self.procs = procs
        self.channels = [grpc.aio.insecure_channel(p.target) for p in procs]
        self.stubs = [pb_grpc.TolokaGatewayStub(c) for c in self.channels]

    def stub(self, i: int) -> pb_grpc.TolokaGatewayStub:
        return self.stubs[i % len(self.stubs)]

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()
        for p in self.procs:
            p.stop()


StartFleet = Callable[..., Awaitable[Fleet]]


@pytest.fixture(params=["standalone", "cluster"])
def redis_for_fleet(request: pytest.FixtureRequest) -> str:
    if request.param == "standalone":
        server: RedisServer = request.getfixturevalue("redis_proc")
        server.cli("FLUSHALL")
        return server.url
    cluster: RedisCluster = request.getfixturevalue("redis_cluster_proc")
    for node in cluster.nodes:
        node.cli("FLUSHALL")
    return cluster.url


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(EmulatorState(operation_duration_s=0.5)) as emu:
        yield emu


@pytest.fixture
async def start_fleet(
    emulator: EmulatorServer, redis_for_fleet: str, tmp_path: Path
) -> AsyncIterator[StartFleet]:
    fleets: list[Fleet] = []

    async def start(size: int = 3, extra_config: str = "") -> Fleet:
        env = {
            "TOLOKA_URL": emulator.url,
            "TOLOKA_API_KEY": "fleet-key",
            "REDIS_URL": redis_for_fleet,
            "GATEWAY_CONFIG": write_config(tmp_path, FLEET_CONFIG + extra_config),
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
        procs = [GatewayProcess(env=dict(env)).start(tmp_path) for _ in range(size)]
        await asyncio.gather(*(p.wait_serving() for p in procs))
        fleet = Fleet(procs)
        fleets.append(fleet)
        return fleet

    yield start
    for fleet in fleets:
        await fleet.close()


def create_request(operation_id: str) -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=operation_id)
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "https://example.com/a.png"})
    return req


def posts(emulator: EmulatorServer, operation_id: str) -> int:
    return sum(
        1 for r in emulator.state.requests if r.path == "/api/v1/tasks" and r.operation_id == operation_id
    )


async def test_one_toloka_request_when_a_thousand_callers_share_an_operation_id(
    start_fleet: StartFleet, emulator: EmulatorServer
) -> None:
    fleet = await start_fleet()
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, latency_s=0.5))
    op_id = str(uuid.uuid4())
    replies = await asyncio.gather(
        *(fleet.stub(i).CreateTasks(create_request(op_id), timeout=30) for i in range(1000))
    )
    assert posts(emulator, op_id) == 1
    assert {r.operation.id for r in replies} == {op_id}
    assert sum(not r.replayed for r in replies) == 1
    # Equal messages (map fields such as `parameters` may serialise in any order, so compare messages).
    assert all(r.operation == replies[0].operation for r in replies)


async def test_reused_operation_id_is_refused_on_another_replica_when_the_request_differs(
    start_fleet: StartFleet,
) -> None:
    fleet = await start_fleet(size=2)
    op_id = str(uuid.uuid4())
    await fleet.stub(0).CreateTasks(create_request(op_id), timeout=10)
    other = create_request(op_id)
    other.tasks[0].overlap = 2
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await fleet.stub(1).CreateTasks(other, timeout=10)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_retry_yields_one_operation_when_the_claiming_replica_is_killed(
    start_fleet: StartFleet, emulator: EmulatorServer
) -> None:
    fleet = await start_fleet(size=2)
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, latency_s=3.0))
    op_id = str(uuid.uuid4())
    doomed = asyncio.ensure_future(fleet.stub(0).CreateTasks(create_request(op_id), timeout=20))
    while posts(emulator, op_id) == 0:  # noqa: ASYNC110 - the emulator log has no event hook
        await asyncio.sleep(0.01)
    fleet.procs[0].signal(signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError):
        await doomed
    reply = await fleet.stub(1).CreateTasks(create_request(op_id), timeout=20)
    assert time.monotonic() - killed < 10  # the dead holder's short lease blocks the id briefly
    assert reply.operation.id == op_id
    assert [o for o in emulator.state.operations if o == op_id] == [op_id]
    assert posts(emulator, op_id) == 2  # the re-send got 409 and was settled by reading the operation


async def test_sync_create_is_never_resent_when_the_claiming_replica_is_killed_mid_request(
    start_fleet: StartFleet, emulator: EmulatorServer
) -> None:
    fleet = await start_fleet(size=2)
    # Toloka performs the create at once, but its reply is late: the sender dies before it arrives.
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, latency_after_work_s=30.0))
    op_id = str(uuid.uuid4())
    req = create_request(op_id)
    req.async_mode = False
    before = len(emulator.state.tasks)
    doomed = asyncio.ensure_future(fleet.stub(0).CreateTasks(req, timeout=20))
    while len(emulator.state.tasks) == before:  # noqa: ASYNC110 - the emulator has no event hook
        await asyncio.sleep(0.01)
    fleet.procs[0].signal(signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError):
        await doomed
    for stub in (fleet.stub(1), fleet.stub(1)):  # the duplicate, then its retry
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateTasks(req, timeout=20)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert rich_status(info.value)["ErrorInfo"].reason == "TOLOKA_OUTCOME_UNKNOWN"
    assert time.monotonic() - killed < 10
    assert posts(emulator, op_id) == 1  # never re-sent blind
    assert len(emulator.state.tasks) == before + 1


async def test_polling_stays_one_loop_when_a_thousand_waiters_spread_over_replicas(
    start_fleet: StartFleet, emulator: EmulatorServer
) -> None:
    fleet = await start_fleet()
    emulator.state.operation_duration_s = 3.0
    op_id = (await fleet.stub(0).CreateTasks(create_request(str(uuid.uuid4())), timeout=10)).operation_id
    wait = pb.WaitOperationRequest(operation_id=op_id, timeout=duration_pb2.Duration(seconds=20))
    replies = await asyncio.gather(*(fleet.stub(i).WaitOperation(wait, timeout=30) for i in range(1000)))
    assert all(r.done and r.operation.status == pb.OPERATION_STATUS_SUCCESS for r in replies)
    gets = sum(1 for r in emulator.state.requests if r.path == f"/api/v1/operations/{op_id}")
    # The emulator's progress moves at every poll, and a moving operation is polled again after the
    # initial interval (0.3 s, jittered by up to -20%): one loop makes at most 3.0 / 0.24 + 1 = 13.5
    # polls (10-11 seen), three independent loops about three times that.
    assert gets <= 13


async def test_waiters_get_the_final_state_when_the_polling_replica_is_killed(
    start_fleet: StartFleet, emulator: EmulatorServer
) -> None:
    fleet = await start_fleet()
    emulator.state.operation_duration_s = 4.0
    op_id = (await fleet.stub(0).CreateTasks(create_request(str(uuid.uuid4())), timeout=10)).operation_id
    wait = pb.WaitOperationRequest(operation_id=op_id, timeout=duration_pb2.Duration(seconds=20))
    waiting = [asyncio.ensure_future(fleet.stub(i).WaitOperation(wait, timeout=30)) for i in range(30)]
    path = f"/api/v1/operations/{op_id}"
    while not any(r.path == path for r in emulator.state.requests):  # noqa: ASYNC110 - no event hook
        await asyncio.sleep(0.01)
    # Whichever replica polls holds the lease; killing every replica but one forces a takeover if needed.
    fleet.procs[0].signal(signal.SIGKILL)
    fleet.procs[1].signal(signal.SIGKILL)
    survivors = [w for i, w in enumerate(waiting) if i % 3 == 2]
    replies = await asyncio.gather(*survivors)
    assert all(r.done and r.operation.status == pb.OPERATION_STATUS_SUCCESS for r in replies)
    for w in waiting:
        if not w.done():
            w.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


LIMIT = 20
PERIOD = 2.0


async def test_fleet_never_exceeds_the_limit_in_any_sliding_window_and_uses_it_when_flooded(
    start_fleet: StartFleet, emulator: EmulatorServer
) -> None:
    config = f"""
[rate_limits]
max_wait = "10s"
limits = [{{name = "create_tasks_small", kinds = ["create_tasks"], capacity = {LIMIT}, period = "{PERIOD}s"}}]
"""
    fleet = await start_fleet(extra_config=config)
    windows = 4
    stop_at = asyncio.get_running_loop().time() + windows * PERIOD + 0.5

    async def flood(i: int) -> None:
        while asyncio.get_running_loop().time() < stop_at:
            try:
                await fleet.stub(i).CreateTasks(create_request(str(uuid.uuid4())), timeout=3)
            except grpc.aio.AioRpcError as e:
                assert e.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED)

    await asyncio.gather(*(flood(i) for i in range(30)))
    times = sorted(r.monotonic for r in emulator.state.requests if r.path == "/api/v1/tasks")
    # Arrival at the emulator lags admission by loopback transit; allow it 0.1 s (the limiter-level
    # tests check the bound exactly on Redis time).
    span = PERIOD - 0.1
    worst = max(sum(1 for t in times[i:] if t < start + span) for i, start in enumerate(times))
    assert worst <= LIMIT
    first = times[0]
    admitted = sum(1 for t in times if t < first + windows * PERIOD)
    assert admitted >= 0.98 * LIMIT * windows
