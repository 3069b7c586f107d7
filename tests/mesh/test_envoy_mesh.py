"""Behind a real Envoy with an Istio-like retry policy: no duplicate tasks, no retry storms, deadlines kept."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import grpc
import pytest
from google.protobuf import duration_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from tests.mesh.harness import TIGHT_CALLER, Mesh, Tally, create_request, metadata
from tests.support.envoy import EnvoyOptions
from tests.support.gateway_harness import rich_status

pytestmark = pytest.mark.slow

Reply = TypeVar("Reply")
# Time a call spends between the client and Envoy, outside Envoy's per-try timer (loopback, busy CPUs).
CLIENT_SLACK_S = 0.2


def _outcome(error: grpc.aio.AioRpcError) -> str:
    details = rich_status(error)
    info = details.get("ErrorInfo")
    reason = f" {info.reason}" if info is not None else ""
    return f"{error.code().name}{reason}: {error.details()}"


async def _attempt(call: Awaitable[Reply]) -> Reply | str:
    """The call's reply, or a description of its failure."""
    try:
        return await call
    except grpc.aio.AioRpcError as e:
        return _outcome(e)


def _delta(before: dict[str, int], after: dict[str, int], name: str) -> int:
    return after.get(name, 0) - before.get(name, 0)


async def _settled(mesh: Mesh, operation_id: str, within_s: float = 10.0) -> None:
    """Wait until Toloka's operation (if Toloka knows it) is finished, so its tasks are visible."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        status = await mesh.emulator.operation_status(operation_id)
        if status is None or status in ("SUCCESS", "FAIL"):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"operation {operation_id} did not finish within {within_s}s")


async def _tasks_of(mesh: Mesh, pool_id: str, operation_id: str) -> int:
    return sum(
        1 for t in await mesh.emulator.tasks(pool_id) if t["input_values"]["operation"] == operation_id
    )


@pytest.mark.timeout(60)
async def test_calls_reach_every_replica_when_sent_through_envoy(mesh: Mesh) -> None:
    pool = await mesh.emulator.new_pool()
    used: set[str] = set()
    for n in range(6):
        reply = await mesh.stub.CreateTasks(
            create_request(pool, str(uuid.uuid4())), metadata=metadata(call=f"spread-{n}"), timeout=10
        )
        assert reply.operation.id == reply.operation_id
        used.update(await mesh.envoy.wait_upstreams_of(f"spread-{n}"))
    assert used == set(mesh.fleet.targets), mesh.diagnostics()


@pytest.mark.timeout(60)
async def test_quota_refusals_are_not_retried_by_the_mesh_when_the_caller_is_over_quota(mesh: Mesh) -> None:
    pool = await mesh.emulator.new_pool()
    md = metadata(caller=TIGHT_CALLER)
    # The caller's one call an hour: spent here, or already spent by an earlier run on this Redis.
    try:
        await mesh.stub.CreateTasks(create_request(pool, str(uuid.uuid4())), metadata=md, timeout=10)
    except grpc.aio.AioRpcError as e:
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, _outcome(e)
    before = await mesh.counters()

    async def refused() -> dict[str, object]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await mesh.stub.CreateTasks(create_request(pool, str(uuid.uuid4())), metadata=md, timeout=10)
        return rich_status(info.value)

    refusals = await asyncio.gather(*(refused() for _ in range(30)))
    after = await mesh.counters()
    assert [r["code"] for r in refusals] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 30
    assert all("RetryInfo" in r for r in refusals), refusals[0]
    retries, tries = _delta(before, after, "upstream_rq_retry"), _delta(before, after, "upstream_rq_total")
    assert (retries, tries) == (0, 30), f"Envoy retried quota refusals\n{mesh.diagnostics()}"


@pytest.mark.parametrize("envoy_options", [EnvoyOptions(per_try_timeout_s=2.0)], ids=["per-try-2s"])
@pytest.mark.timeout(60)
async def test_wait_answers_not_done_within_the_try_when_it_is_longer_than_the_per_try_timeout(
    mesh: Mesh,
) -> None:
    pool = await mesh.emulator.new_pool()
    await mesh.emulator.configure(operation_duration_s=600)
    created = await mesh.stub.CreateTasks(
        create_request(pool, str(uuid.uuid4())), metadata=metadata(), timeout=10
    )
    before = await mesh.counters()
    wait = pb.WaitOperationRequest(
        operation_id=created.operation_id, timeout=duration_pb2.Duration(seconds=30)
    )
    started = time.monotonic()
    reply = await _attempt(mesh.stub.WaitOperation(wait, metadata=metadata(), timeout=30))
    elapsed = time.monotonic() - started
    after = await mesh.counters()
    assert not isinstance(reply, str), f"failed after {elapsed:.1f}s: {reply}\n{mesh.diagnostics()}"
    assert not reply.done
    assert reply.operation.status in (pb.OPERATION_STATUS_PENDING, pb.OPERATION_STATUS_RUNNING)
    # Envoy cut no try, so the answer came within the first 2 s try; the client's clock also counts the
    # two loopback hops outside Envoy's per-try timer, hence the slack.
    assert _delta(before, after, "upstream_rq_per_try_timeout") == 0, mesh.diagnostics()
    assert _delta(before, after, "upstream_rq_total") == 1, mesh.diagnostics()
    assert elapsed < 2.0 + CLIENT_SLACK_S, f"answered after {elapsed:.2f}s, past the 2 s try"


@pytest.mark.timeout(90)
async def test_no_call_fails_when_a_replica_is_stopped_under_load(mesh: Mesh) -> None:
    pool = await mesh.emulator.new_pool()
    victim = mesh.fleet.replicas[1]
    succeeded = Tally()
    failures: list[str] = []
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            try:
                created = await mesh.stub.CreateTasks(
                    create_request(pool, str(uuid.uuid4())), metadata=metadata(), timeout=15
                )
                await succeeded.add()
                wait = pb.WaitOperationRequest(
                    operation_id=created.operation_id, timeout=duration_pb2.Duration(seconds=1)
                )
                await mesh.stub.WaitOperation(wait, metadata=metadata(), timeout=15)
                await succeeded.add()
            except grpc.aio.AioRpcError as e:
                failures.append(_outcome(e))

    before = await mesh.counters()
    clients = [asyncio.create_task(client()) for _ in range(6)]
    try:
        await asyncio.wait_for(succeeded.reaches(30), 20)
        assert mesh.envoy.requests_by_upstream()[victim.target] > 0, mesh.diagnostics()
        victim.signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(victim.wait, 30)
        # Keep the load on after the replica is gone: calls must not be routed to it any more.
        await asyncio.wait_for(succeeded.reaches(succeeded.value + 30), 20)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    after = await mesh.counters()
    calls = succeeded.value + len(failures)
    assert failures == [], f"{len(failures)} of {calls} calls failed\n{mesh.diagnostics()}"
    assert exit_code == 0, victim.logs()
    # The replica says NOT_SERVING for 2 s before it stops and Envoy checks every second, so Envoy stops
    # routing to it first: no try fails, nothing is retried (retries would hide a drain that cuts calls).
    retried = _delta(before, after, "upstream_rq_retry")
    assert retried == 0, f"Envoy retried {retried} tries of {calls} calls\n{mesh.diagnostics()}"


@pytest.mark.timeout(60)
async def test_operation_id_proceeds_within_ten_seconds_when_its_claim_holder_is_killed(mesh: Mesh) -> None:
    pool = await mesh.emulator.new_pool()
    operation_id = str(uuid.uuid4())
    request = create_request(pool, operation_id, tasks=2)
    # The holder stays mid-request: Toloka answers its POST only long after the test is over.
    await mesh.emulator.add_fault(method="POST", path="^/api/v1/tasks$", times=1, latency_s=30)
    first = asyncio.ensure_future(
        mesh.stub.CreateTasks(request, metadata=metadata(call=operation_id), timeout=40)
    )
    try:
        await mesh.emulator.wait_posted(operation_id)
        [holder_target] = await mesh.envoy.wait_upstreams_of(operation_id)
        holder = mesh.fleet.replicas[mesh.fleet.index_of(holder_target)]
        holder.signal(signal.SIGKILL)
        killed_at = time.monotonic()
        reply = await _attempt(mesh.stub.CreateTasks(request, metadata=metadata(), timeout=10))
        after = time.monotonic() - killed_at
        assert not isinstance(reply, str), (
            f"still blocked {after:.1f}s after the kill: {reply}\n{mesh.diagnostics()}"
        )
        assert after < 10
        assert reply.operation_id == operation_id
        await _settled(mesh, operation_id)
        assert await _tasks_of(mesh, pool, operation_id) == 2
    finally:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)


@pytest.mark.parametrize("async_mode", [True, False], ids=["async", "sync"])
@pytest.mark.timeout(60)
async def test_one_set_of_tasks_per_operation_id_when_replies_are_lost(mesh: Mesh, async_mode: bool) -> None:
    pool = await mesh.emulator.new_pool()
    operation_id = str(uuid.uuid4())
    request = create_request(pool, operation_id, tasks=2, async_mode=async_mode)
    # Toloka does the work for the first POST, then the connection drops before the reply.
    await mesh.emulator.add_fault(method="POST", path="^/api/v1/tasks$", times=1, drop_after_work=True)
    outcomes = []
    for _ in range(2):  # the call (with the mesh's retries), then the caller's own retry
        reply = await _attempt(mesh.stub.CreateTasks(request, metadata=metadata(), timeout=20))
        outcomes.append(reply if isinstance(reply, str) else "OK")
    await _settled(mesh, operation_id)
    created = await _tasks_of(mesh, pool, operation_id)
    posts = await mesh.emulator.posts(operation_id)
    assert created == 2, f"{created} tasks for one set of 2; {posts} POSTs; callers got {outcomes}"
