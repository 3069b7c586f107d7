"""Every id field is matched in full, and every field of a request counts toward a bounded size."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.errors import ViolationList
from gateway.service import required_operation_id
from gateway.translate import quality_control as qc
from gateway.translate.ids import MAX_TOLOKER_ID_CHARS, check_operation_id, check_pool_id
from gateway.translate.request_size import (
    MAX_BODY_BYTES,
    MAX_FREE_FIELD_BYTES,
    MAX_FREE_FIELDS_BYTES,
    MAX_OUTPUT_VALUES_BYTES,
)
from gateway.translate.tasks import plan_create_tasks
from gateway.translate.values import json_to_struct

OP = "3f1c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90"
# Whitespace and look-alike digits around or inside an id: each must be refused, not trimmed.
BAD_SUFFIXES = ["\n", "\r\n", " ", "\t", "\x00", "\u2028"]


def task(pool_id: str = "1", **kw: object) -> pb.Task:
    t = pb.Task(pool_id=pool_id, **{"overlap": 1, **kw})  # type: ignore[arg-type]
    json_to_struct({"image": "http://x/1.png"}, t.input_values)
    return t


def refusal(req: pb.CreateTasksRequest) -> errors.InvalidArgument:
    with pytest.raises(errors.InvalidArgument) as info:
        plan_create_tasks(req, max_tasks=10_000)
    return info.value


def violations(req: pb.CreateTasksRequest) -> dict[str, str]:
    return {v.field: v.reason for v in refusal(req).violations}


def descriptions(req: pb.CreateTasksRequest) -> dict[str, str]:
    return {v.field: v.description for v in refusal(req).violations}


# ---- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", BAD_SUFFIXES)
def test_task_pool_id_is_refused_when_it_carries_whitespace(suffix: str) -> None:
    req = pb.CreateTasksRequest(tasks=[task("2" + suffix)])
    assert violations(req) == {"tasks[0].pool_id": "INVALID_ID"}


def test_each_task_pool_id_is_checked_when_an_earlier_task_named_a_valid_pool() -> None:
    req = pb.CreateTasksRequest(tasks=[task("2"), task("2"), task("2\n"), task("3")])
    assert violations(req) == {"tasks[2].pool_id": "INVALID_ID"}


@pytest.mark.parametrize("pool_id", ["\uff12", "\u0662", "02", "-2", "2.0"])
def test_task_pool_id_is_refused_when_it_is_not_ascii_decimal(pool_id: str) -> None:
    assert violations(pb.CreateTasksRequest(tasks=[task(pool_id)])) == {"tasks[0].pool_id": "INVALID_ID"}


@pytest.mark.parametrize("suffix", BAD_SUFFIXES)
def test_create_tasks_operation_id_is_refused_when_it_carries_whitespace(suffix: str) -> None:
    req = pb.CreateTasksRequest(tasks=[task()], operation_id=OP + suffix)
    assert violations(req) == {"operation_id": "INVALID_UUID"}


@pytest.mark.parametrize("operation_id", [OP + "\n", " " + OP, OP.replace("-", "\n", 1)])
def test_read_operation_id_is_refused_when_it_is_not_exactly_a_uuid(operation_id: str) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        required_operation_id(operation_id)
    assert [(v.field, v.reason) for v in info.value.violations] == [("operation_id", "INVALID_UUID")]


def test_operation_id_passes_when_it_is_exactly_a_uuid_in_either_case() -> None:
    problems = ViolationList()
    check_operation_id(OP, problems)
    check_operation_id(OP.upper(), problems)
    assert problems.items == []


@pytest.mark.parametrize("suffix", BAD_SUFFIXES)
def test_rework_pool_id_is_refused_when_it_carries_whitespace(suffix: str) -> None:
    problems = ViolationList()
    check_pool_id("2" + suffix, problems)
    assert [(v.field, v.reason) for v in problems.items] == [("pool_id", "INVALID_ID")]


@pytest.mark.parametrize("suffix", BAD_SUFFIXES)
def test_rework_skill_id_is_refused_when_it_carries_whitespace(suffix: str) -> None:
    problems = ViolationList()
    rule = pb.ReworkRule(skill_change=pb.SkillChangeTrigger(skill_id="26" + suffix), delta=1)
    qc.check_rules([rule], problems)
    assert [(v.field, v.reason) for v in problems.items] == [("rules[0].skill_change.skill_id", "INVALID_ID")]


@pytest.mark.parametrize("field", ["reserved_for", "unavailable_for"])
@pytest.mark.parametrize("bad", ["u1\n", "u 1", "", "\tu1", "u\u00e91", "x" * (MAX_TOLOKER_ID_CHARS + 1)])
def test_toloker_id_is_refused_when_empty_long_or_not_visible_ascii(field: str, bad: str) -> None:
    req = pb.CreateTasksRequest(tasks=[task(**{field: ["u0", bad, bad]})])
    assert violations(req) == {f"tasks[0].{field}[1]": "INVALID_ID"}  # one violation per list


def test_toloker_ids_pass_when_visible_ascii_within_the_bound() -> None:
    ids = ["a1b2c3", "x" * MAX_TOLOKER_ID_CHARS, "user-42_ok"]
    plan_create_tasks(pb.CreateTasksRequest(tasks=[task(reserved_for=ids, unavailable_for=ids)]), max_tasks=1)


# ---- size budget -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["message_on_unknown_solution", "traits_all_of", "traits_any_of", "traits_none_of_any"]
)
def test_a_free_text_field_is_refused_with_size_and_bound_when_over_the_field_bound(field: str) -> None:
    text = "m" * (MAX_FREE_FIELD_BYTES + 1)
    t = task(**{field: text if field.startswith("message") else [text[:10], text[10:]]})
    described = descriptions(pb.CreateTasksRequest(tasks=[t]))
    assert set(described) == {f"tasks[0].{field}"}
    assert f"{MAX_FREE_FIELD_BYTES + 1} bytes" in described[f"tasks[0].{field}"]
    assert str(MAX_FREE_FIELD_BYTES) in described[f"tasks[0].{field}"]
    assert violations(pb.CreateTasksRequest(tasks=[t]))[f"tasks[0].{field}"] == "TOO_LARGE"


def test_a_free_text_field_passes_when_exactly_at_the_field_bound() -> None:
    t = task(message_on_unknown_solution="m" * MAX_FREE_FIELD_BYTES)
    plan_create_tasks(pb.CreateTasksRequest(tasks=[t]), max_tasks=1)


def test_text_is_measured_in_utf8_bytes_when_it_is_not_ascii() -> None:
    chars = MAX_FREE_FIELD_BYTES // 2 + 1  # under the bound in characters, over it in bytes
    t = task(message_on_unknown_solution="\u00e9" * chars)
    assert violations(pb.CreateTasksRequest(tasks=[t])) == {
        "tasks[0].message_on_unknown_solution": "TOO_LARGE"
    }


def test_localization_config_is_refused_when_over_the_field_bound() -> None:
    t = task()
    json_to_struct({"en": {"title": "t" * MAX_FREE_FIELD_BYTES}}, t.localization_config)
    assert violations(pb.CreateTasksRequest(tasks=[t])) == {"tasks[0].localization_config": "TOO_LARGE"}


def test_free_fields_are_refused_as_a_whole_when_their_total_is_over_the_request_bound() -> None:
    each = MAX_FREE_FIELD_BYTES
    count = MAX_FREE_FIELDS_BYTES // each + 1
    late_bad = task(overlap=0)  # after the budget is spent: translation stopped before it
    tasks = [task(message_on_unknown_solution="m" * each) for _ in range(count)] + [late_bad]
    found = refusal(pb.CreateTasksRequest(tasks=tasks))
    assert [(v.field, v.reason) for v in found.violations] == [("tasks", "TOO_LARGE")]
    assert str(MAX_FREE_FIELDS_BYTES) in found.violations[0].description
    assert f"tasks[{count - 1}].message_on_unknown_solution" in found.violations[0].description


def test_free_fields_pass_when_their_total_is_exactly_the_request_bound() -> None:
    count = MAX_FREE_FIELDS_BYTES // MAX_FREE_FIELD_BYTES
    tasks = [task(message_on_unknown_solution="m" * MAX_FREE_FIELD_BYTES) for _ in range(count)]
    plan_create_tasks(pb.CreateTasksRequest(tasks=tasks), max_tasks=count)


def test_the_json_body_is_refused_when_escapes_take_it_over_the_body_bound() -> None:
    # Control characters are one byte each as sent and six (\u0001) in JSON: within every field
    # bound, the body would still be about 24 MiB.
    count = MAX_FREE_FIELDS_BYTES // MAX_FREE_FIELD_BYTES
    tasks = [task(traits_all_of=["\x01" * MAX_FREE_FIELD_BYTES]) for _ in range(count)]
    found = refusal(pb.CreateTasksRequest(tasks=tasks))
    assert [(v.field, v.reason) for v in found.violations] == [("tasks", "TOO_LARGE")]
    assert str(MAX_BODY_BYTES) in found.violations[0].description


def test_output_values_are_refused_when_their_total_is_over_toloka_bound() -> None:
    tasks = []
    for _ in range(5):
        t = task()
        json_to_struct({"label": "x" * (MAX_OUTPUT_VALUES_BYTES // 5)}, t.known_solutions.add().output_values)
        tasks.append(t)
    found = refusal(pb.CreateTasksRequest(tasks=tasks))
    assert [(v.field, v.reason) for v in found.violations] == [("tasks", "TOO_LARGE")]
    assert "output_values" in found.violations[0].description
