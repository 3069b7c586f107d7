"""Violation paths built from Struct keys stay short, however long the keys or deep the nesting."""

from __future__ import annotations

import math

import pytest
from google.protobuf import struct_pb2

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.errors import ViolationList
from gateway.translate.tasks import plan_create_tasks
from gateway.translate.values import (
    ELLIPSIS,
    MAX_NON_FINITE_VIOLATIONS,
    MAX_PATH_CHARS,
    MAX_PATH_KEY_CHARS,
    bounded_path,
    path_key,
    struct_to_json,
)


def nan_paths(struct: struct_pb2.Struct, prefix: str = "tasks[0].input_values") -> list[str]:
    problems = ViolationList()
    struct_to_json(struct, prefix, problems)
    assert {v.reason for v in problems.items} == {"NON_FINITE_NUMBER"}
    return [v.field for v in problems.items]


def test_a_long_key_is_cut_with_an_ellipsis_when_a_nan_sits_under_it() -> None:
    key = "k" * 8192
    s = struct_pb2.Struct()
    s.fields[key].number_value = math.nan
    [path] = nan_paths(s)
    assert path == "tasks[0].input_values." + "k" * (MAX_PATH_KEY_CHARS - 1) + ELLIPSIS


def test_keys_are_kept_whole_when_within_the_key_bound() -> None:
    key = "k" * MAX_PATH_KEY_CHARS
    assert path_key(key) == key
    s = struct_pb2.Struct()
    s.fields[key].list_value.values.add().number_value = math.inf
    assert nan_paths(s) == [f"tasks[0].input_values.{key}[0]"]


def test_the_whole_path_is_bounded_keeping_both_ends_when_nesting_is_deep() -> None:
    s = struct_pb2.Struct()
    node = s
    keys = [f"level{i:02d}" + "x" * 200 for i in range(40)]
    for key in keys[:-1]:
        node = node.fields[key].struct_value
    node.fields["leaf"].number_value = -math.inf
    [path] = nan_paths(s)
    assert len(path) == MAX_PATH_CHARS
    assert path.startswith("tasks[0].input_values.level00")
    assert path.endswith(".leaf") and ELLIPSIS in path


def test_bounded_path_leaves_short_paths_alone_when_under_the_bound() -> None:
    path = "tasks[12].input_values.a.b[3]"
    assert bounded_path(path) == path
    assert len(bounded_path("p" * 10_000)) == MAX_PATH_CHARS


def test_non_finite_violations_are_capped_when_a_struct_holds_many() -> None:
    s = struct_pb2.Struct()
    for i in range(1000):
        s.fields[f"n{i}"].number_value = math.nan
    assert len(nan_paths(s)) == MAX_NON_FINITE_VIOLATIONS


@pytest.mark.parametrize("field", ["input_values", "localization_config"])
def test_no_violation_path_exceeds_the_bound_when_a_request_has_huge_keys(field: str) -> None:
    t = pb.Task(pool_id="1", overlap=1)
    t.input_values.fields["ok"].string_value = "x"
    target = getattr(t, field)
    target.fields["a" * 5000].struct_value.fields["b" * 5000].number_value = math.nan
    with pytest.raises(errors.InvalidArgument) as info:
        plan_create_tasks(pb.CreateTasksRequest(tasks=[t]), max_tasks=1)
    [violation] = info.value.violations
    assert violation.field.startswith(f"tasks[0].{field}.aaa")
    assert len(violation.field) <= MAX_PATH_CHARS
    assert len(info.value.message) < 2 * MAX_PATH_CHARS
