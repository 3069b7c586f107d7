"""GetQuota and shadow limits over real gRPC, on a real Redis: what GetQuota says is what the next
flood gets, it costs one Redis round trip and spends nothing; a shadow limit never refuses, and
its metric and the call log say what it would have refused."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from tests.support.gateway_harness import InProcessGateway, rich_status, start_gateway, write_config
from tests.support.redis_servers import RedisServer

LIMITS = """
[rate_limits]
max_wait = "0s"
limits = [
  {name = "account", capacity = 1000, period = "1m"},
  {name = "tasks_per_minute", kinds = ["create_tasks"], capacity = 10000, period = "1m", unit = "tasks"},
  {name = "trial_creates", kinds = ["create_tasks"], capacity = 2, period = "1m", shadow = true},
]
[[rate_limits.callers.tests]]
name = "creates"
kinds = ["create_tasks"]
capacity = 5
period = "1m"
[[rate_limits.callers.tests]]
name = "trial_reads"
kinds = ["get_operation"]
capacity = 1
period = "1h"
shadow = true
[auth.callers.no-quota]
methods = ["CreateTasks"]
"""


@pytest.fixture
async def gw(emulator: EmulatorServer, tmp_path: Path, redis_url: str) -> AsyncIterator[InProcessGateway]:
    handle = await start_gateway(
        toloka_url=emulator.url, config_path=write_config(tmp_path, LIMITS), redis_url=redis_url
    )
    yield handle
    await handle.close()


def create() -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "u"})
    return req


def limits(reply: pb.GetQuotaResponse) -> dict[str, pb.LimitQuota]:
    return {f"{q.caller}/{q.name}" if q.caller else q.name: q for q in reply.limits}


def sample(gw: InProcessGateway, name: str, **labels: str) -> float:
    value = gw.gateway.metrics.registry.get_sample_value(f"toloka_gateway_{name}", labels)
    return 0.0 if value is None else float(value)


def evalsha_calls(server: RedisServer) -> int:
    for line in server.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


async def test_get_quota_says_how_many_creates_the_next_flood_admits_and_when_the_next_frees(
    gw: InProcessGateway,
) -> None:
    for _ in range(2):
        await gw.stub.CreateTasks(create(), metadata=gw.md())
    before = limits(await gw.stub.GetQuota(pb.GetQuotaRequest(kind="create_tasks"), metadata=gw.md()))
    assert sorted(before) == ["account", "tasks_per_minute", "tests/creates", "trial_creates"]
    creates = before["tests/creates"]
    assert (creates.capacity, creates.remaining, creates.unit, creates.shadow) == (
        5,
        3,
        pb.LIMIT_UNIT_REQUESTS,
        False,
    )
    assert creates.period.ToTimedelta().total_seconds() == 60 and list(creates.kinds) == ["create_tasks"]
    assert creates.next_unit_in.ToTimedelta().total_seconds() == 0
    assert before["tasks_per_minute"].unit == pb.LIMIT_UNIT_TASKS
    admitted = 0
    while True:
        sent_at = time.monotonic()  # the refusal is decided after this
        try:
            await gw.stub.CreateTasks(create(), metadata=gw.md())
        except grpc.aio.AioRpcError as e:
            refused = rich_status(e)
            break
        admitted += 1
    assert admitted == creates.remaining
    assert refused["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    after = limits(await gw.stub.GetQuota(pb.GetQuotaRequest(kind="create_tasks"), metadata=gw.md()))
    elapsed = time.monotonic() - sent_at  # GetQuota read the window at most this long after the refusal
    assert after["tests/creates"].remaining == 0
    retry_after = refused["RetryInfo"].retry_delay.ToTimedelta().total_seconds()
    next_unit_in = after["tests/creates"].next_unit_in.ToTimedelta().total_seconds()
    # Both are read off the same window on Redis's clock, at most `elapsed` apart.
    assert retry_after - elapsed - 0.001 <= next_unit_in <= retry_after + 0.001
    assert after["account"].remaining == 1000 - 5


async def test_get_quota_costs_one_redis_round_trip_and_spends_nothing(
    gw: InProcessGateway, redis_proc: RedisServer
) -> None:
    await gw.stub.CreateTasks(create(), metadata=gw.md())
    first = await gw.stub.GetQuota(pb.GetQuotaRequest(), metadata=gw.md())
    before = evalsha_calls(redis_proc)
    for _ in range(10):
        again = await gw.stub.GetQuota(pb.GetQuotaRequest(), metadata=gw.md())
        assert [(q.name, q.remaining) for q in again.limits] == [(q.name, q.remaining) for q in first.limits]
    assert evalsha_calls(redis_proc) - before == 10
    assert not first.degraded
    assert [q.name for q in first.limits] == [
        "account", "tasks_per_minute", "trial_creates", "creates", "trial_reads"
    ]  # fmt: skip


async def test_get_quota_refuses_an_unknown_kind_with_bad_request_naming_the_field(
    gw: InProcessGateway,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.GetQuota(pb.GetQuotaRequest(kind="create_task" + "s" * 500), metadata=gw.md())
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.INVALID_ARGUMENT
    violation = details["BadRequest"].field_violations[0]
    assert violation.field == "kind" and "create_tasks" in violation.description
    assert len(details["message"]) < 200  # the unknown kind is echoed cut short


async def test_get_quota_is_refused_to_a_caller_whose_methods_leave_it_out(gw: InProcessGateway) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.GetQuota(pb.GetQuotaRequest(), metadata=gw.md("no-quota"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_shadow_limit_never_refuses_and_its_metric_and_log_count_what_it_would_have(
    gw: InProcessGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.calls")
    for _ in range(4):
        await gw.stub.CreateTasks(create(), metadata=gw.md("other"))  # no quota of its own
    trial_creates = {"limit": "global/trial_creates", "account": "default"}  # one account: `default`
    assert sample(gw, "ratelimit_shadow_refusals_total", kind="create_tasks", **trial_creates) == 2
    lines = [r for r in caplog.records if getattr(r, "method", "") == "CreateTasks"]
    assert [getattr(r, "shadow_refusals", None) for r in lines] == [
        None,
        None,
        ["trial_creates"],
        ["trial_creates"],
    ]
    trial = limits(await gw.stub.GetQuota(pb.GetQuotaRequest(), metadata=gw.md("other")))["trial_creates"]
    assert (trial.shadow, trial.remaining) == (True, 0)
    assert 59 < trial.next_unit_in.ToTimedelta().total_seconds() <= 60.6
    assert sample(gw, "ratelimit_capacity", **trial_creates) == 2
    assert sample(gw, "ratelimit_remaining", **trial_creates) == 0
    assert sample(gw, "ratelimit_remaining", limit="global/account", account="default") == 1000 - 4
    assert sample(gw, "ratelimit_refused_total", **trial_creates) == 0
