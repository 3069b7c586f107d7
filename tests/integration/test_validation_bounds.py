"""Ids matched in full, size bounds and short violation paths, over real gRPC with the emulator over HTTP.

Each refusal must come before any Toloka request: the emulator's request log stays as it was.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from gateway.translate.quality_control import MAX_REWORK_RULES
from gateway.translate.request_size import MAX_FREE_FIELD_BYTES
from gateway.translate.values import MAX_PATH_CHARS, json_to_struct
from tests.support.gateway_harness import InProcessGateway, rich_status

OP = str(uuid.UUID("3f1c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90"))
# The smallest metadata limit a gRPC client applies by default (16 KiB): every refusal must fit.
CLIENT_METADATA_LIMIT = 16 * 1024


def task(pool_id: str = "1", **kw: Any) -> pb.Task:
    t = pb.Task(pool_id=pool_id, overlap=1, **kw)
    json_to_struct({"image": "http://x/1.png"}, t.input_values)
    return t


def restriction(delta: int = 1) -> pb.ReworkRule:
    return pb.ReworkRule(restriction=pb.RestrictionTrigger(), delta=delta)


Call = Callable[[InProcessGateway], Awaitable[Any]]

REFUSED: dict[str, tuple[Call, str, str]] = {
    "create_tasks_pool_id": (
        lambda gw: gw.stub.CreateTasks(pb.CreateTasksRequest(tasks=[task("2\n")]), metadata=gw.md()),
        "tasks[0].pool_id",
        "INVALID_ID",
    ),
    "create_tasks_operation_id": (
        lambda gw: gw.stub.CreateTasks(
            pb.CreateTasksRequest(tasks=[task()], operation_id=OP + "\n"), metadata=gw.md()
        ),
        "operation_id",
        "INVALID_UUID",
    ),
    "create_tasks_reserved_for": (
        lambda gw: gw.stub.CreateTasks(
            pb.CreateTasksRequest(tasks=[task(reserved_for=["u1\n"])]), metadata=gw.md()
        ),
        "tasks[0].reserved_for[0]",
        "INVALID_ID",
    ),
    "set_rework_rules_pool_id": (
        lambda gw: gw.stub.SetReworkRules(
            pb.SetReworkRulesRequest(pool_id="2\n", rules=[restriction()]), metadata=gw.md()
        ),
        "pool_id",
        "INVALID_ID",
    ),
    "set_rework_rules_skill_id": (
        lambda gw: gw.stub.SetReworkRules(
            pb.SetReworkRulesRequest(
                pool_id="2",
                rules=[pb.ReworkRule(skill_change=pb.SkillChangeTrigger(skill_id="5\n"), delta=1)],
            ),
            metadata=gw.md(),
        ),
        "rules[0].skill_change.skill_id",
        "INVALID_ID",
    ),
    "set_rework_rules_operation_id": (
        lambda gw: gw.stub.SetReworkRules(
            pb.SetReworkRulesRequest(pool_id="2", rules=[restriction()], operation_id=OP + "\n"),
            metadata=gw.md(),
        ),
        "operation_id",
        "INVALID_UUID",
    ),
    "get_rework_rules_pool_id": (
        lambda gw: gw.stub.GetReworkRules(pb.GetReworkRulesRequest(pool_id="2\n"), metadata=gw.md()),
        "pool_id",
        "INVALID_ID",
    ),
    "get_operation_operation_id": (
        lambda gw: gw.stub.GetOperation(pb.GetOperationRequest(operation_id=OP + "\n"), metadata=gw.md()),
        "operation_id",
        "INVALID_UUID",
    ),
    "wait_operation_operation_id": (
        lambda gw: gw.stub.WaitOperation(pb.WaitOperationRequest(operation_id=OP + "\n"), metadata=gw.md()),
        "operation_id",
        "INVALID_UUID",
    ),
    "set_rework_rules_too_many_rules": (
        lambda gw: gw.stub.SetReworkRules(
            pb.SetReworkRulesRequest(
                pool_id="2", rules=[restriction(d) for d in range(1, MAX_REWORK_RULES + 2)]
            ),
            metadata=gw.md(),
        ),
        "rules",
        "TOO_MANY",
    ),
}


async def refused(gw: InProcessGateway, call: Call) -> dict[str, Any]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(gw)
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.INVALID_ARGUMENT, details
    return details


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_request_is_refused_before_toloka_when_an_id_is_not_matched_in_full_or_too_many(
    gw: InProcessGateway, emulator: EmulatorServer, case: str
) -> None:
    call, field, reason = REFUSED[case]
    seen = len(emulator.state.requests)
    details = await refused(gw, call)
    violations = [(v.field, v.reason) for v in details["BadRequest"].field_violations]
    assert violations == [(field, reason)]
    assert len(emulator.state.requests) == seen


async def test_rework_rules_on_a_pool_are_written_when_its_id_has_no_newline(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    """The control for the refusals above: the same request with the plain id reaches Toloka."""
    resp = await gw.stub.SetReworkRules(
        pb.SetReworkRulesRequest(pool_id="4", rules=[restriction(2)]), metadata=gw.md()
    )
    assert resp.changed
    assert any(r.path == "/api/v1/pools/4" for r in emulator.state.requests)


async def test_oversized_message_on_unknown_solution_is_refused_before_toloka_when_sent(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    size = 8 * 1024 * 1024
    req = pb.CreateTasksRequest(tasks=[task(message_on_unknown_solution="m" * size)], operation_id=OP)
    seen = len(emulator.state.requests)
    details = await refused(gw, lambda gw: gw.stub.CreateTasks(req, metadata=gw.md()))
    [violation] = details["BadRequest"].field_violations
    assert (violation.field, violation.reason) == ("tasks[0].message_on_unknown_solution", "TOO_LARGE")
    assert f"{size} bytes" in violation.description and str(MAX_FREE_FIELD_BYTES) in violation.description
    assert len(emulator.state.requests) == seen


async def test_violation_path_stays_short_when_a_nan_sits_under_an_8kb_key(gw: InProcessGateway) -> None:
    t = task()
    t.input_values.fields["k" * 8192].struct_value.fields["v" * 8192].number_value = math.nan
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(pb.CreateTasksRequest(tasks=[t]), metadata=gw.md())
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.INVALID_ARGUMENT  # not a metadata-size RESOURCE_EXHAUSTED
    [violation] = details["BadRequest"].field_violations
    assert violation.reason == "NON_FINITE_NUMBER"
    assert violation.field.startswith("tasks[0].input_values.kkk") and len(violation.field) <= MAX_PATH_CHARS
    trailer = sum(len(k) + len(v) for k, v in info.value.trailing_metadata() or ())
    assert trailer < CLIENT_METADATA_LIMIT // 4
