"""Pure translation of CreateTasks into Toloka's JSON and back."""

from __future__ import annotations

import math
import uuid

import orjson
import pytest
from google.protobuf import struct_pb2

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.translate.tasks import (
    MAX_SYNC_TASKS,
    batch_from_log,
    batch_from_sync,
    plan_create_tasks,
)
from gateway.translate.values import json_to_struct

OP = "3f1c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90"


def task(**kw: object) -> pb.Task:
    values = kw.pop("input_values", {"image": "http://x/1.png"})
    t = pb.Task(pool_id=str(kw.pop("pool_id", "1")), **kw)  # type: ignore[arg-type]
    json_to_struct(values, t.input_values)  # type: ignore[arg-type]
    return t


def body_of(req: pb.CreateTasksRequest) -> list[dict[str, object]]:
    return orjson.loads(plan_create_tasks(req, max_tasks=10_000).body)  # type: ignore[no-any-return]


def violations(req: pb.CreateTasksRequest) -> dict[str, str]:
    with pytest.raises(errors.InvalidArgument) as info:
        plan_create_tasks(req, max_tasks=10_000)
    return {v.field: v.reason for v in info.value.violations}


def test_overlap_is_omitted_when_unset() -> None:
    [item] = body_of(pb.CreateTasksRequest(tasks=[task()], async_mode=False))
    assert "overlap" not in item and "infinite_overlap" not in item


def test_overlap_n_sends_infinite_false_when_set() -> None:
    [item] = body_of(pb.CreateTasksRequest(tasks=[task(overlap=3)], async_mode=False))
    assert item["overlap"] == 3 and item["infinite_overlap"] is False


def test_infinite_overlap_sends_null_overlap_when_set() -> None:
    [item] = body_of(pb.CreateTasksRequest(tasks=[task(infinite_overlap=True)], async_mode=False))
    assert item["overlap"] is None and item["infinite_overlap"] is True


def test_every_task_field_translates_when_given() -> None:
    t = task(
        input_values={"image": "u", "n": 2, "f": 0.5, "ok": True, "tags": ["a", None], "o": {"k": 1}},
        overlap=2,
        message_on_unknown_solution="look again",
        reserved_for=["u1"],
        unavailable_for=["u2"],
        traits_all_of=["a"],
        traits_any_of=["b"],
        traits_none_of_any=["c"],
    )
    ks = t.known_solutions.add(correctness_weight=0.5)
    json_to_struct({"label": "cat"}, ks.output_values)
    json_to_struct({"label": "dog"}, t.known_solutions.add().output_values)
    bs = t.baseline_solutions.add(confidence_weight=0.25)
    json_to_struct({"label": "cat"}, bs.output_values)
    json_to_struct({"en": {"title": "t"}}, t.localization_config)
    [item] = body_of(pb.CreateTasksRequest(tasks=[t], async_mode=False))
    assert item == {
        "pool_id": "1",
        "input_values": {"image": "u", "n": 2, "f": 0.5, "ok": True, "tags": ["a", None], "o": {"k": 1}},
        "overlap": 2,
        "infinite_overlap": False,
        "known_solutions": [
            {"output_values": {"label": "cat"}, "correctness_weight": 0.5},
            {"output_values": {"label": "dog"}},
        ],
        "message_on_unknown_solution": "look again",
        "baseline_solutions": [{"output_values": {"label": "cat"}, "confidence_weight": 0.25}],
        "reserved_for": ["u1"],
        "unavailable_for": ["u2"],
        "traits_all_of": ["a"],
        "traits_any_of": ["b"],
        "traits_none_of_any": ["c"],
        "localization_config": {"en": {"title": "t"}},
    }


def test_query_follows_sdk_defaults_when_options_unset() -> None:
    plan = plan_create_tasks(pb.CreateTasksRequest(tasks=[task()], operation_id=OP), max_tasks=10)
    assert plan.params == {"operation_id": OP, "async_mode": "true"}
    assert plan.is_async


def test_query_carries_every_option_when_set() -> None:
    req = pb.CreateTasksRequest(
        tasks=[task()],
        operation_id=OP,
        async_mode=False,
        allow_defaults=True,
        open_pool=True,
        skip_invalid_items=True,
    )
    plan = plan_create_tasks(req, max_tasks=10)
    assert plan.params == {
        "operation_id": OP,
        "async_mode": "false",
        "allow_defaults": "true",
        "open_pool": "true",
        "skip_invalid_items": "true",
    }


def test_async_items_carry_their_index_when_async() -> None:
    items = body_of(pb.CreateTasksRequest(tasks=[task(), task()]))
    assert [i["__item_idx"] for i in items] == ["0", "1"]


def test_gateway_makes_a_uuid_when_operation_id_is_empty() -> None:
    plan = plan_create_tasks(pb.CreateTasksRequest(tasks=[task()]), max_tasks=10)
    assert uuid.UUID(plan.operation_id).version == 4


def test_fingerprint_is_equal_when_requests_are_equal_and_async_mode_implicit() -> None:
    a = plan_create_tasks(pb.CreateTasksRequest(tasks=[task()], operation_id=OP), max_tasks=10)
    b = plan_create_tasks(
        pb.CreateTasksRequest(tasks=[task()], operation_id=OP, async_mode=True), max_tasks=10
    )
    c = plan_create_tasks(pb.CreateTasksRequest(tasks=[task(overlap=2)], operation_id=OP), max_tasks=10)
    assert a.fingerprint == b.fingerprint != c.fingerprint


@pytest.mark.parametrize(
    ("req", "field", "reason"),
    [
        (pb.CreateTasksRequest(), "tasks", "REQUIRED"),
        (pb.CreateTasksRequest(tasks=[task()], operation_id="not-a-uuid"), "operation_id", "INVALID_UUID"),
        (pb.CreateTasksRequest(tasks=[task(pool_id="")]), "tasks[0].pool_id", "REQUIRED"),
        (pb.CreateTasksRequest(tasks=[task(input_values={})]), "tasks[0].input_values", "REQUIRED"),
        (pb.CreateTasksRequest(tasks=[task(overlap=0)]), "tasks[0].overlap", "OUT_OF_RANGE"),
        (pb.CreateTasksRequest(tasks=[task(overlap=-1)]), "tasks[0].overlap", "OUT_OF_RANGE"),
        (pb.CreateTasksRequest(tasks=[task(overlap=30_001)]), "tasks[0].overlap", "OUT_OF_RANGE"),
        (
            pb.CreateTasksRequest(tasks=[task(overlap=2, infinite_overlap=True)]),
            "tasks[0].overlap",
            "CONFLICT",
        ),
    ],
)
def test_bad_input_is_refused_with_a_field_violation_when_given(
    req: pb.CreateTasksRequest, field: str, reason: str
) -> None:
    assert violations(req).get(field) == reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_when_nested(bad: float) -> None:
    t = task()
    t.input_values.fields["deep"].struct_value.fields["x"].list_value.values.add().number_value = bad
    assert violations(pb.CreateTasksRequest(tasks=[t])) == {
        "tasks[0].input_values.deep.x[0]": "NON_FINITE_NUMBER"
    }


def test_sync_batches_over_5000_are_refused_when_async_mode_false() -> None:
    req = pb.CreateTasksRequest(tasks=[task()] * (MAX_SYNC_TASKS + 1), async_mode=False)
    assert violations(req) == {"tasks": "TOO_MANY"}
    plan_create_tasks(pb.CreateTasksRequest(tasks=[task()] * (MAX_SYNC_TASKS + 1)), max_tasks=10_000)


def test_batches_over_the_configured_maximum_are_refused_when_async() -> None:
    with pytest.raises(errors.InvalidArgument):
        plan_create_tasks(pb.CreateTasksRequest(tasks=[task()] * 11), max_tasks=10)


def test_input_values_over_one_mib_are_refused_when_summed_over_tasks() -> None:
    big = "x" * (300 * 1024)
    req = pb.CreateTasksRequest(tasks=[task(input_values={"t": big}) for _ in range(4)])
    assert violations(req) == {"tasks": "TOO_LARGE"}
    plan_create_tasks(
        pb.CreateTasksRequest(tasks=[task(input_values={"t": big}) for _ in range(3)]), max_tasks=10
    )


def test_weights_outside_zero_to_one_are_refused_when_given() -> None:
    t = task()
    t.known_solutions.add(correctness_weight=1.5).output_values.fields["a"].string_value = "b"
    assert violations(pb.CreateTasksRequest(tasks=[t])) == {
        "tasks[0].known_solutions[0].correctness_weight": "OUT_OF_RANGE"
    }


def test_sync_batch_result_keeps_indexes_and_field_paths_when_mixed() -> None:
    result = batch_from_sync(
        {
            "items": {
                "0": {
                    "id": "t0",
                    "pool_id": "1",
                    "created": "2024-01-02T03:04:05.678",
                    "remaining_overlap": 3,
                }
            },
            "validation_errors": {"1": {"input_values.image": {"code": "VALUE_REQUIRED", "message": "m"}}},
        }
    )
    assert result.items[0].id == "t0" and result.items[0].remaining_overlap == 3
    assert result.items[0].created.ToJsonString() == "2024-01-02T03:04:05.678Z"
    [err] = result.validation_errors[1].errors
    assert (err.field, err.code, err.message) == ("input_values.image", "VALUE_REQUIRED", "m")


def test_single_task_sync_answer_becomes_index_zero_when_object_body() -> None:
    result = batch_from_sync({"id": "t9", "pool_id": "1"})
    assert result.items[0].id == "t9"


def test_log_maps_items_by_sent_index_when_order_differs() -> None:
    log = [
        {
            "type": "TASK_VALIDATE",
            "success": False,
            "input": {"__item_idx": "1"},
            "output": {"overlap": {"code": "C", "message": "m"}},
        },
        {
            "type": "TASK_CREATE",
            "success": True,
            "input": {"__item_idx": "0", "pool_id": "1"},
            "output": {"task_id": "t0"},
        },
        {"type": "POOL_OPEN", "success": False, "input": {"pool_id": "1"}, "output": {"code": "EMPTY_POOL"}},
    ]
    batch, others = batch_from_log(log)
    assert batch.items[0].id == "t0" and batch.items[0].pool_id == "1"
    assert batch.validation_errors[1].errors[0].field == "overlap"
    assert others == [log[2]]


def test_struct_values_round_trip_when_numbers_are_integral() -> None:
    s = json_to_struct({"a": 1, "b": 1.5, "c": [True, "x"]}, struct_pb2.Struct())
    [item] = body_of(pb.CreateTasksRequest(tasks=[pb.Task(pool_id="1", input_values=s)], async_mode=False))
    assert item["input_values"] == {"a": 1, "b": 1.5, "c": [True, "x"]}


def test_fingerprint_ignores_map_order_when_the_same_values_arrive_differently_ordered() -> None:
    keys = [f"k{i}" for i in range(40)]
    a, b = pb.Task(pool_id="1", overlap=1), pb.Task(pool_id="1", overlap=1)
    for k in keys:
        a.input_values.fields[k].string_value = k
    for k in reversed(keys):
        b.input_values.fields[k].string_value = k
    pa = plan_create_tasks(pb.CreateTasksRequest(tasks=[a], operation_id=OP), max_tasks=10)
    pb_ = plan_create_tasks(pb.CreateTasksRequest(tasks=[b], operation_id=OP), max_tasks=10)
    assert pa.fingerprint == pb_.fingerprint
    assert orjson.loads(pa.body) == orjson.loads(pb_.body)
