"""Concurrent large requests are bounded by the in-flight request memory budget.

Each request is charged raw size x MEMORY_FACTOR before it is decoded and holds the charge until its
call ends. These tests hold real requests in flight at the emulator (a latency fault) and send more
over real gRPC.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import Callable

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.faults import Fault
from gateway.emulator.state import EmulatorState, RecordedRequest
from gateway.rpc.incoming import RequestDecoder
from gateway.rpc.request_budget import MEMORY_FACTOR, RequestMemoryBudget
from tests.rpc.conftest import Start, metric_value
from tests.support.gateway_harness import InProcessGateway, rich_status

RESERVED = "toloka_gateway_request_memory_reserved_bytes"
REFUSED = "toloka_gateway_request_memory_refused_total"
HOLD_S = 5.0  # how long the emulator holds each of the first two creates: far longer than the test needs


class ArrivalSignallingState(EmulatorState):
    """Emulator state that wakes waiters whenever an API request arrives (before a fault delays it)."""

    def __init__(self, **kw: float) -> None:
        super().__init__(**kw)
        self.arrived = asyncio.Event()

    def record(self, request: RecordedRequest) -> None:
        super().record(request)
        self.arrived.set()

    async def wait_until(self, predicate: Callable[[], bool], within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
def emulator_state() -> EmulatorState:
    return ArrivalSignallingState(operation_duration_s=0.3, pool_operation_duration_s=0.05)


def large_create(kib: int) -> pb.CreateTasksRequest:
    """A valid CreateTasks of about `kib` KiB (input_values stay within Toloka's 1 MiB per request)."""
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    for i in range(kib // 4):
        req.tasks.add(pool_id="1", overlap=1).input_values.update({"text": f"{i}:" + "x" * 4000})
    return req


def posts(state: EmulatorState) -> int:
    return sum(1 for r in state.requests if r.method == "POST" and r.path == "/api/v1/tasks")


async def refusal(gw: InProcessGateway, req: pb.CreateTasksRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(req, metadata=gw.md(), timeout=10)
    return info.value


async def test_requests_over_the_budget_are_refused_and_all_is_released_when_large_calls_run_at_once(
    start: Start, emulator_state: ArrivalSignallingState
) -> None:
    held = [large_create(200), large_create(200)]
    charge = RequestMemoryBudget(capacity_bytes=1).charge(held[0].ByteSize())
    budget = 2 * charge + charge // 2  # two such requests fit, a third does not
    gw = await start(f"[server]\nmax_inflight_request_bytes = {budget}\n")
    emulator_state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=2, latency_s=HOLD_S))
    calls = [asyncio.ensure_future(gw.stub.CreateTasks(r, metadata=gw.md(), timeout=30)) for r in held]
    await emulator_state.wait_until(lambda: posts(emulator_state) == 2)
    assert metric_value(gw, RESERVED) >= 2 * charge

    busy = await refusal(gw, large_create(200))
    details = rich_status(busy)
    assert details["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details["ErrorInfo"].reason == "REQUEST_MEMORY_BUDGET"
    assert details["RetryInfo"].retry_delay.ToTimedelta().total_seconds() > 0
    assert ("x-envoy-ratelimited", "true") in tuple(busy.trailing_metadata() or ())

    too_large = rich_status(await refusal(gw, large_create(600)))  # charged more than the whole budget
    assert too_large["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert too_large["ErrorInfo"].reason == "REQUEST_MEMORY_BUDGET"
    assert "RetryInfo" not in too_large  # waiting can never help
    assert posts(emulator_state) == 2  # neither refused request reached Toloka

    for reply in await asyncio.gather(*calls):
        assert reply.operation_id
    assert metric_value(gw, RESERVED) == 0
    assert metric_value(gw, REFUSED) == 2
    # Only a fully released budget has room for a request charged twice as much as one held before.
    assert (await gw.stub.CreateTasks(large_create(400), metadata=gw.md(), timeout=30)).operation_id
    assert metric_value(gw, RESERVED) == 0


class CallEnds(logging.Handler):
    """Wakes waiters on each call the gateway logs as ended (it logs after releasing the request)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.statuses: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.statuses.append(str(getattr(record, "status", "")))
        self.changed.set()

    async def wait_for(self, count: int, within_s: float) -> None:
        async with asyncio.timeout(within_s):
            while len(self.statuses) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_budget_stays_held_by_creates_whose_callers_left_until_they_end(
    start: Start, emulator_state: ArrivalSignallingState, caplog: pytest.LogCaptureFixture
) -> None:
    # A cancelled caller does not stop its create (its outcome is kept for the retry), and the create
    # still holds its request in memory: the budget is given back when the create ends, not before.
    gw = await start("[server]\nmax_inflight_request_bytes = 100000000\n")
    hold_s = 1.0
    emulator_state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=3, latency_s=hold_s))
    calls = [gw.stub.CreateTasks(large_create(100), metadata=gw.md(), timeout=30) for _ in range(3)]
    await emulator_state.wait_until(lambda: posts(emulator_state) == 3)
    held = metric_value(gw, RESERVED)
    assert held > 0
    ends = CallEnds()
    caplog.set_level(logging.INFO, logger="gateway.calls")
    logging.getLogger("gateway.calls").addHandler(ends)
    try:
        for call in calls:
            call.cancel()
        await ends.wait_for(3, within_s=hold_s / 2)  # the handlers end on cancellation
    finally:
        logging.getLogger("gateway.calls").removeHandler(ends)
    assert ends.statuses == ["CANCELLED"] * 3
    assert metric_value(gw, RESERVED) == held  # the creates go on, holding their requests
    async with asyncio.timeout(hold_s + 5):
        while metric_value(gw, RESERVED) > 0:  # noqa: ASYNC110 - the budget has no event hook
            await asyncio.sleep(0.02)
    assert gw.gateway.dedupe is not None and gw.gateway.dedupe.counters.detached == 3


def test_reservation_is_released_when_the_decoded_request_never_reaches_a_handler() -> None:
    budget = RequestMemoryBudget(capacity_bytes=10**9)
    raw = large_create(8).SerializeToString()
    incoming = RequestDecoder(pb.CreateTasksRequest, budget)(raw)
    assert incoming.message is not None and budget.reserved_bytes == budget.charge(len(raw))
    del incoming  # the call was cancelled between decoding and its handler
    gc.collect()
    assert budget.reserved_bytes == 0 and budget.in_flight == 0


def test_budget_is_not_charged_when_the_request_cannot_be_decoded() -> None:
    budget = RequestMemoryBudget(capacity_bytes=10**9)
    incoming = RequestDecoder(pb.CreateTasksRequest, budget)(b"\xff\xff\xff\xff\x0f")
    assert incoming.refusal is not None and incoming.refusal.reason == "UNDECODABLE_REQUEST"
    assert budget.reserved_bytes == 0


def test_charge_is_raw_size_times_the_measured_factor_when_reserved() -> None:
    budget = RequestMemoryBudget(capacity_bytes=10**9)
    reservation = budget.reserve(1000)
    assert reservation.nbytes == int(1000 * MEMORY_FACTOR) == budget.reserved_bytes
    reservation.release()
    reservation.release()  # idempotent
    assert budget.reserved_bytes == 0
