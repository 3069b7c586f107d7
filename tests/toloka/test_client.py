"""A real TolokaClient against the real emulator over HTTP, with an in-process rate limiter.

Pauses between attempts go through the policy's manual clock (recorded, not waited), so the retry
decisions are exact; the few deadline tests use real time (the caller's deadline) with wide margins.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState, RecordedRequest
from gateway.limit_spec import LimitSpec
from gateway.ratelimit.factory import build_rate_limiter
from gateway.request_kinds import KIND_GET_POOL
from gateway.settings import RateLimitSettings, TolokaSettings, default_limits
from gateway.toloka.client import TolokaClient
from gateway.toloka.retry_policy import RetryPolicy
from gateway.translate.tasks import CreateTasksPlan, plan_create_tasks
from gateway.translate.values import json_to_struct
from tests.toloka.pause_log import PauseLog

TASKS = "^/api/v1/tasks$"
POOL = "^/api/v1/pools/1$"


@dataclass
class Toloka:
    """A client, the emulator it talks to, and the clock its retry policy pauses on."""

    client: TolokaClient
    emulator: EmulatorServer
    clock: PauseLog = field(default_factory=PauseLog)

    @property
    def slept(self) -> list[float]:
        return self.clock.pauses

    def requests(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.emulator.state.requests if r.method == method and r.path == path]


Connect = Callable[..., Awaitable[Toloka]]


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(EmulatorState(operation_duration_s=0.3)) as emu:
        yield emu


@pytest.fixture
async def connect(emulator: EmulatorServer) -> AsyncIterator[Connect]:
    """Builds clients on the emulator: `await connect(limits=..., **toloka_settings)`."""
    clients: list[TolokaClient] = []

    async def build(limits: tuple[LimitSpec, ...] = default_limits(), **settings: Any) -> Toloka:
        toloka_settings = TolokaSettings(url=emulator.url, api_key="emulator-key", **settings)
        clock = PauseLog()
        client = TolokaClient(
            settings=toloka_settings,
            base_url=emulator.url,
            limiter=build_rate_limiter(RateLimitSettings(limits=limits, max_wait_s=0.0), None),
            retry=RetryPolicy.from_settings(toloka_settings, clock=clock, rng=lambda: 0.5),
        )
        clients.append(client)
        return Toloka(client=client, emulator=emulator, clock=clock)

    yield build
    for client in clients:
        await client.close()


def plan(*, is_async: bool, operation_id: str | None = None) -> CreateTasksPlan:
    task = pb.Task(pool_id="1", overlap=1)
    json_to_struct({"image": "https://example.com/1.png"}, task.input_values)
    req = pb.CreateTasksRequest(
        tasks=[task], operation_id=operation_id or str(uuid.uuid4()), async_mode=is_async
    )
    return plan_create_tasks(req, max_tasks=100)


async def test_create_is_retried_with_the_same_operation_id_when_toloka_answers_503_then_succeeds(
    connect: Connect,
) -> None:
    toloka = await connect()
    toloka.emulator.state.add_fault(Fault(method="POST", path=TASKS, times=2, status=503))
    p = plan(is_async=True)
    reply = await toloka.client.create_tasks(p, call=Call())
    assert reply.status == 202 and reply.data["id"] == p.operation_id
    sent = toloka.requests("POST", "/api/v1/tasks")
    assert [r.operation_id for r in sent] == [p.operation_id] * 3
    assert toloka.slept == [pytest.approx(0.15), pytest.approx(0.3)]  # 0.2 s then 0.4 s, jitter at 3/4
    # After each 5xx the operation is read first (404: not created yet), then the POST re-sent.
    assert len(toloka.requests("GET", f"/api/v1/operations/{p.operation_id}")) == 2
    assert toloka.client.retry_budget.tokens == pytest.approx(10 - 2 + 3 * 0.1)  # 2 failures, 3 answers


async def test_every_attempt_takes_the_rate_limit_when_a_request_is_retried(connect: Connect) -> None:
    toloka = await connect(limits=(LimitSpec("pool_reads", (KIND_GET_POOL,), 2, 60.0),))
    toloka.emulator.state.add_fault(Fault(method="GET", path=POOL, times=None, status=503))
    with pytest.raises(errors.RateLimited):
        await toloka.client.get_pool("1", Call())
    assert len(toloka.requests("GET", "/api/v1/pools/1")) == 2  # the third attempt found no capacity


@pytest.mark.parametrize(
    "fault",
    [Fault(method="POST", path=TASKS, drop_after_work=True), Fault(method="POST", path=TASKS, status=503)],
    ids=["reply-dropped", "503"],
)
async def test_sync_create_is_sent_once_and_reported_unknown_when_toloka_may_have_acted(
    connect: Connect, fault: Fault
) -> None:
    toloka = await connect()
    toloka.emulator.state.add_fault(fault)
    posts_before_send: list[int] = []

    async def before_send() -> None:
        posts_before_send.append(len(toloka.requests("POST", "/api/v1/tasks")))

    with pytest.raises(errors.OutcomeUnknown) as info:
        await toloka.client.create_tasks(plan(is_async=False), call=Call(), before_send=before_send)
    assert info.value.reason == "TOLOKA_OUTCOME_UNKNOWN" and info.value.metadata["ambiguous"] == "true"
    assert len(toloka.requests("POST", "/api/v1/tasks")) == 1
    assert posts_before_send == [0]  # ran once, before the only attempt left
    assert toloka.slept == []


async def test_sync_create_hook_runs_once_when_the_create_succeeds(connect: Connect) -> None:
    toloka = await connect()
    calls: list[str] = []

    async def before_send() -> None:
        calls.append("sent")

    reply = await toloka.client.create_tasks(plan(is_async=False), call=Call(), before_send=before_send)
    assert reply.status == 201 and calls == ["sent"]


async def test_async_create_reads_its_operation_instead_of_resending_when_the_reply_is_lost(
    connect: Connect,
) -> None:
    toloka = await connect()
    toloka.emulator.state.add_fault(Fault(method="POST", path=TASKS, drop_after_work=True))
    p = plan(is_async=True)
    reply = await toloka.client.create_tasks(p, call=Call())
    assert reply.status == 200 and reply.data["id"] == p.operation_id
    assert len(toloka.requests("POST", "/api/v1/tasks")) == 1
    assert len(toloka.requests("GET", f"/api/v1/operations/{p.operation_id}")) == 1


async def test_async_create_returns_the_existing_operation_when_toloka_answers_409(connect: Connect) -> None:
    toloka = await connect()
    p = plan(is_async=True)
    first = await toloka.client.create_tasks(p, call=Call())
    again = await toloka.client.create_tasks(p, call=Call())
    assert first.status == 202 and again.status == 200
    assert again.data["id"] == first.data["id"] == p.operation_id
    assert len(toloka.requests("POST", "/api/v1/tasks")) == 2
    assert toloka.slept == []


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async-operation-gone"])
async def test_create_fails_as_already_performed_when_409_cannot_be_read_back(
    connect: Connect, is_async: bool
) -> None:
    toloka = await connect()
    toloka.emulator.state.add_fault(
        Fault(method="POST", path=TASKS, status=409, code="OPERATION_ALREADY_EXISTS")
    )
    with pytest.raises(errors.FailedPrecondition) as info:
        await toloka.client.create_tasks(plan(is_async=is_async), call=Call())
    assert info.value.reason == "OPERATION_ALREADY_PERFORMED"
    assert info.value.toloka_code == "OPERATION_ALREADY_EXISTS" and info.value.toloka_request_id
    assert len(toloka.requests("POST", "/api/v1/tasks")) == 1


async def test_retry_after_over_the_cap_goes_back_to_the_caller_as_rate_limited_with_retry_info(
    connect: Connect,
) -> None:
    toloka = await connect(backoff_max_s=10.0)
    toloka.emulator.state.add_fault(Fault(method="GET", path=POOL, status=429, retry_after=30))
    with pytest.raises(errors.RateLimited) as info:
        await toloka.client.get_pool("1", Call())
    assert info.value.reason == "TOLOKA_RATE_LIMITED" and info.value.retry_after == 30.0
    assert len(toloka.requests("GET", "/api/v1/pools/1")) == 1 and toloka.slept == []


async def test_retry_budget_stops_retries_when_most_attempts_fail(connect: Connect) -> None:
    toloka = await connect(retry_budget_tokens=4.0)
    toloka.emulator.state.add_fault(Fault(method="GET", path=POOL, times=None, status=503))
    with pytest.raises(errors.Unavailable) as first:
        await toloka.client.get_pool("1", Call())
    assert len(toloka.requests("GET", "/api/v1/pools/1")) == 2  # 4 -> 3 tokens: one retry; 2: none
    with pytest.raises(errors.Unavailable) as second:
        await toloka.client.get_pool("1", Call())
    assert len(toloka.requests("GET", "/api/v1/pools/1")) == 3  # one attempt, no retry
    for failure in (first.value, second.value):
        assert failure.metadata["retries_throttled"] == "true" and failure.retry_after
    toloka.emulator.state.clear_faults()
    assert (await toloka.client.get_pool("1", Call()))["id"] == "1"


async def test_nothing_is_sent_when_the_callers_deadline_has_passed(connect: Connect) -> None:
    toloka = await connect()
    with pytest.raises(errors.DeadlineExceeded):
        await toloka.client.get_pool("1", Call(deadline=time.monotonic() - 1))
    assert toloka.requests("GET", "/api/v1/pools/1") == []


async def test_async_create_attempt_is_cut_at_the_callers_deadline_when_toloka_is_slow(
    connect: Connect,
) -> None:
    toloka = await connect()
    toloka.emulator.state.add_fault(Fault(method="POST", path=TASKS, latency_s=3.0))
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded) as info:
        await toloka.client.create_tasks(plan(is_async=True), call=Call(deadline=started + 0.3))
    assert time.monotonic() - started < 2.0
    assert info.value.metadata["attempts"] == "1" and info.value.metadata["ambiguous"] == "true"


async def test_sync_create_attempt_outlives_the_callers_deadline_when_toloka_is_slow(
    connect: Connect,
) -> None:
    toloka = await connect()
    toloka.emulator.state.add_fault(Fault(method="POST", path=TASKS, latency_s=0.8))
    started = time.monotonic()
    reply = await toloka.client.create_tasks(plan(is_async=False), call=Call(deadline=started + 0.2))
    assert reply.status == 201 and time.monotonic() - started >= 0.8
    assert len(toloka.requests("POST", "/api/v1/tasks")) == 1
