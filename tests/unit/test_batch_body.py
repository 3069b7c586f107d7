"""A stream's tasks encoded one by one into batch bodies: the same request as CreateTasks, cut at the bounds."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.translate.batch_body import BatchBody, TaskEncoder
from gateway.translate.request_size import MAX_INPUT_VALUES_BYTES
from gateway.translate.tasks import fingerprint, plan_create_tasks
from gateway.translate.values import json_to_struct

OP = "3f1c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90"


def task(values: dict[str, object] | None = None, **kw: object) -> pb.Task:
    t = pb.Task(pool_id=str(kw.pop("pool_id", "1")), **kw)  # type: ignore[arg-type]
    json_to_struct(values or {"image": "http://x/1.png"}, t.input_values)
    return t


def varied_tasks() -> list[pb.Task]:
    """Every kind of field a task can carry, in one request."""
    plain = task({"image": "http://x/1.png", "n": 3, "ratio": 0.25, "big": 2.0**60}, overlap=2)
    infinite = task({"nested": {"b": [1, "two", None, True, {"z": 1, "a": 2}]}}, infinite_overlap=True)
    known = task({"é": "ünï", "emoji": "\U0001f600"}, overlap=1)
    known.known_solutions.add(correctness_weight=0.5).output_values.update({"label": "cat"})
    baseline = task(pool_id="22", overlap=5)
    baseline.baseline_solutions.add(confidence_weight=1.0).output_values.update({"label": "dog"})
    free = task(overlap=3, message_on_unknown_solution='ärger "quoted"\n')
    free.reserved_for.extend(["abc", "def"])
    free.traits_all_of.append("t1")
    free.localization_config.update({"default_language": "EN"})
    defaults = task({"only": "values"})
    return [plain, infinite, known, baseline, free, defaults]


def encode_all(tasks: list[pb.Task], *, first: int = 0) -> bytes:
    encoder, body = TaskEncoder(), BatchBody()
    for i, t in enumerate(tasks):
        assert body.add(encoder.encode(t, first + i), cap=10_000, one_pool=False)
    return body.finish()


def test_a_batch_body_is_the_body_and_fingerprint_create_tasks_makes_for_the_same_tasks() -> None:
    tasks = varied_tasks() * 3
    plan = plan_create_tasks(pb.CreateTasksRequest(tasks=tasks, operation_id=OP), max_tasks=10_000)
    body = encode_all(tasks, first=40_000)  # stream indexes do not show in the body
    assert body == plan.body
    assert fingerprint(plan.params, body) == plan.fingerprint


def test_a_bad_task_is_refused_naming_its_stream_index() -> None:
    bad = task(overlap=-1)
    with pytest.raises(errors.InvalidArgument) as refused:
        TaskEncoder().encode(bad, 12_345)
    assert [(v.field, v.reason) for v in refused.value.violations] == [
        ("tasks[12345].overlap", "OUT_OF_RANGE")
    ]
    assert refused.value.metadata["stream_index"] == "12345"
    with pytest.raises(errors.InvalidArgument) as empty:
        TaskEncoder().encode(pb.Task(pool_id="1", overlap=1), 3)
    assert empty.value.violations[0].field == "tasks[3].input_values"


def test_a_task_that_alone_passes_a_bound_is_refused_at_its_index() -> None:
    huge = task({"text": "x" * MAX_INPUT_VALUES_BYTES}, overlap=1)
    with pytest.raises(errors.InvalidArgument) as refused:
        TaskEncoder().encode(huge, 7)
    assert [(v.field, v.reason) for v in refused.value.violations] == [("tasks[7].input_values", "TOO_LARGE")]


def test_a_body_refuses_the_task_that_would_pass_the_input_values_bound_or_the_cap() -> None:
    encoder, body = TaskEncoder(), BatchBody()
    tenth = task({"text": "x" * (MAX_INPUT_VALUES_BYTES // 10 - 20)}, overlap=1)
    taken = 0
    while body.add(encoder.encode(tenth, taken), cap=10_000, one_pool=False):
        taken += 1
    assert taken == 10 and body.input <= MAX_INPUT_VALUES_BYTES
    small = BatchBody()
    assert [small.add(encoder.encode(task(overlap=1), i), cap=2, one_pool=False) for i in range(3)] == [
        True,
        True,
        False,
    ]


def test_a_body_refuses_another_pool_only_when_one_pool_per_batch() -> None:
    encoder = TaskEncoder()
    one, other = encoder.encode(task(overlap=1), 0), encoder.encode(task(pool_id="4", overlap=1), 1)
    mixed, single = BatchBody(), BatchBody()
    assert mixed.add(one, cap=10, one_pool=False) and mixed.add(other, cap=10, one_pool=False)
    assert mixed.pools == {"1", "4"}
    assert single.add(one, cap=10, one_pool=True) and not single.add(other, cap=10, one_pool=True)
