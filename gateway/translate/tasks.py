"""CreateTasks <-> Toloka's `POST /api/v1/tasks`: validation, JSON body, query, replies.

Everything Toloka would refuse for the request as a whole is refused here first, with field
violations, before any Toloka call or any quota is spent.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.descriptor import FieldDescriptor

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.errors import ViolationList
from gateway.translate.ids import check_operation_id, check_pool_id, check_toloker_ids, is_toloka_id
from gateway.translate.operations import operation_from_json, timestamp_from_toloka
from gateway.translate.request_size import OverBudget, RequestTally, text_bytes
from gateway.translate.values import NonFiniteNumber, struct_to_json, struct_values

MAX_SYNC_TASKS = 5_000
MAX_OVERLAP = 30_000
ITEM_INDEX_KEY = "__item_idx"
_INDEXES_CACHED = 10_000
_INDEXES = [str(i) for i in range(_INDEXES_CACHED)]  # the item indexes of a request, as sent
_CHUNK = 512


@dataclass(frozen=True)
class CreateTasksPlan:
    """A validated CreateTasks, ready to send."""

    operation_id: str
    body: bytes
    params: dict[str, str]
    task_count: int
    is_async: bool
    fingerprint: str


def _solutions(
    items: Any, weight_field: str, path: str, problems: ViolationList, tally: RequestTally
) -> list[dict[str, Any]]:
    out = []
    for i, sol in enumerate(items):
        where = f"{path}[{i}]"
        values = struct_to_json(sol.output_values, f"{where}.output_values", problems)
        tally.solution_values.append(values)
        item: dict[str, Any] = {"output_values": values}
        if sol.HasField(weight_field):
            weight = getattr(sol, weight_field)
            if not 0.0 <= weight <= 1.0:
                problems.add(f"{where}.{weight_field}", "must be between 0 and 1", "OUT_OF_RANGE")
            item[weight_field] = weight
        out.append(item)
    return out


_list_fields = pb.Task.ListFields  # bound once: called for every task of a request
_TASK_FIELDS = pb.Task.DESCRIPTOR.fields_by_name
_POOL_ID = _TASK_FIELDS["pool_id"].number
_INPUT_VALUES = _TASK_FIELDS["input_values"].number
_OVERLAP = _TASK_FIELDS["overlap"].number
_INFINITE_OVERLAP = _TASK_FIELDS["infinite_overlap"].number
_SOLUTION_WEIGHTS = {  # a solution list's field number: the name of its solutions' weight
    _TASK_FIELDS["known_solutions"].number: "correctness_weight",
    _TASK_FIELDS["baseline_solutions"].number: "confidence_weight",
}
_WITH_INFINITE = "cannot be set together with infinite_overlap"
_LOCALIZATION_CONFIG = _TASK_FIELDS["localization_config"].number
_MESSAGE_ON_UNKNOWN_SOLUTION = _TASK_FIELDS["message_on_unknown_solution"].number
_TOLOKER_LISTS = frozenset(_TASK_FIELDS[name].number for name in ("reserved_for", "unavailable_for"))
_FREE_FIELDS = frozenset(  # free text, lists and Structs: each counts toward the request's size budget
    _TASK_FIELDS[name].number
    for name in (
        "message_on_unknown_solution",
        "localization_config",
        "reserved_for",
        "unavailable_for",
        "traits_all_of",
        "traits_any_of",
        "traits_none_of_any",
    )
)


def _struct_at(value: Any, path: str, name: str, problems: ViolationList) -> dict[str, Any]:
    try:
        return struct_values(value)
    except NonFiniteNumber:
        return struct_to_json(value, f"{path}.{name}", problems)


def task_to_json(  # noqa: PLR0912 - a hot path, inlined on purpose (see the docstring)
    task: pb.Task, index: int, problems: ViolationList, tally: RequestTally
) -> dict[str, Any]:
    """Task `index` of a request as Toloka's JSON object, overlap serialised exactly as Toloka expects;
    violations are recorded under `tasks[index]`. Raises OverBudget (see `RequestTally`). Walks only
    the fields that are set (one `ListFields` call, dispatch on field number, common fields first),
    checks inline, field paths built only when needed: this runs 10,000 times per request."""
    out: dict[str, Any] = {}
    pool_id = ""
    overlap: int | None = None
    infinite = False
    for fd, value in _list_fields(task):
        number = fd.number
        if number == _INPUT_VALUES:
            try:  # _struct_at, inlined: one call fewer per task
                out["input_values"] = struct_values(value)
            except NonFiniteNumber:
                out["input_values"] = struct_to_json(value, f"tasks[{index}].input_values", problems)
        elif number == _OVERLAP:
            overlap = value
        elif number == _POOL_ID:
            pool_id = value
        elif number == _INFINITE_OVERLAP:
            infinite = value
        elif number in _SOLUTION_WEIGHTS:
            weight = _SOLUTION_WEIGHTS[number]
            out[fd.name] = _solutions(value, weight, f"tasks[{index}].{fd.name}", problems, tally)
        elif number in _FREE_FIELDS:
            _free_field(fd, value, f"tasks[{index}]", out, problems=problems, tally=tally)
    out["pool_id"] = pool_id
    if pool_id not in tally.valid_pools:  # most requests name one pool: check it once
        if is_toloka_id(pool_id):
            tally.valid_pools.add(pool_id)
        else:
            check_pool_id(pool_id, problems, f"tasks[{index}].pool_id")
    values = out.get("input_values")
    if values is None or (not values and not task.input_values.fields):
        problems.add(f"tasks[{index}].input_values", "is required and must not be empty", "REQUIRED")
    if infinite:
        if overlap is not None:
            problems.add(f"tasks[{index}].overlap", _WITH_INFINITE, "CONFLICT")
        out["overlap"] = None
        out["infinite_overlap"] = True
    elif overlap is not None:
        if not 1 <= overlap <= MAX_OVERLAP:
            problems.add(f"tasks[{index}].overlap", f"must be between 1 and {MAX_OVERLAP}", "OUT_OF_RANGE")
        out["overlap"] = overlap
        out["infinite_overlap"] = False
    return out


def _free_field(
    fd: FieldDescriptor,
    value: Any,
    path: str,
    out: dict[str, Any],
    *,
    problems: ViolationList,
    tally: RequestTally,
) -> None:
    """message_on_unknown_solution, localization_config, the id and trait lists: sized, then added."""
    number, name = fd.number, fd.name
    if number == _LOCALIZATION_CONFIG:
        size = value.ByteSize()
    elif number == _MESSAGE_ON_UNKNOWN_SOLUTION:
        size = text_bytes(value)
    else:
        size = sum(map(text_bytes, value))
    if not tally.add_free_field(size, f"{path}.{name}", problems):
        return
    if number == _LOCALIZATION_CONFIG:
        out[name] = _struct_at(value, path, name, problems)
    elif number == _MESSAGE_ON_UNKNOWN_SOLUTION:
        out[name] = value
    else:
        if number in _TOLOKER_LISTS:
            check_toloker_ids(value, problems, f"{path}.{name}")
        out[name] = list(value)


def json_size(values: list[Any]) -> int:
    """Bytes of compact JSON the values take together (one orjson call, not one per value)."""
    return len(orjson.dumps(values)) - 1 - max(len(values), 1) if values else 0


def fingerprint(params: dict[str, str], body: bytes) -> str:
    """A digest of the canonical request (not the operation_id), for operation-id reuse checks.

    `body` is canonical JSON (keys sorted at every level, by `_serialise`), so the same request
    gives the same digest on every replica whatever order its maps arrived in; hashing what is
    sent to Toloka also costs no second pass over the protobuf.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(orjson.dumps({k: v for k, v in sorted(params.items()) if k != "operation_id"}))
    h.update(body)
    return h.hexdigest()


def _check_shape(req: pb.CreateTasksRequest, is_async: bool, max_tasks: int) -> None:
    """Refuse a request whose task count or operation_id is wrong, before any task is translated."""
    problems = ViolationList()
    count = len(req.tasks)
    if count == 0:
        problems.add("tasks", "at least one task is required", "REQUIRED")
    elif not is_async and count > MAX_SYNC_TASKS:
        problems.add(
            "tasks",
            f"{count} tasks: synchronous mode takes at most {MAX_SYNC_TASKS}; use async_mode",
            "TOO_MANY",
        )
    elif count > max_tasks:
        problems.add("tasks", f"{count} tasks: at most {max_tasks} per request; split the batch", "TOO_MANY")
    check_operation_id(req.operation_id, problems)
    problems.raise_if_any()


def plan_create_tasks(
    req: pb.CreateTasksRequest,
    *,
    max_tasks: int,
    new_operation_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> CreateTasksPlan:
    """Validate a CreateTasks request and build Toloka's body and query, or raise InvalidArgument."""
    is_async = req.async_mode if req.HasField("async_mode") else True
    _check_shape(req, is_async, max_tasks)
    operation_id = req.operation_id.lower() or new_operation_id()
    params = {"operation_id": operation_id, "async_mode": "true" if is_async else "false"}
    for flag in ("allow_defaults", "open_pool", "skip_invalid_items"):
        if getattr(req, flag):
            params[flag] = "true"
    problems = ViolationList()
    body = _serialise(req, is_async, problems)
    problems.raise_if_any()
    return CreateTasksPlan(
        operation_id=operation_id,
        body=body,
        params=params,
        task_count=len(req.tasks),
        is_async=is_async,
        fingerprint=fingerprint(params, body),
    )


def _serialise(req: pb.CreateTasksRequest, is_async: bool, problems: ViolationList) -> bytes:
    """The JSON array body, built `_CHUNK` tasks at a time; stops at the first bound passed.

    Only one chunk of tasks exists as Python objects at once, so a 10,000-task request holds
    its protobuf, the finished JSON chunks and the joined body: a few copies of its payload.
    """
    parts: list[bytes] = [b"["]
    tally = RequestTally()
    tasks = req.tasks
    for start in range(0, len(tasks), _CHUNK):
        try:
            chunk = [
                task_to_json(task, i, problems, tally)
                for i, task in enumerate(tasks[start : start + _CHUNK], start)
            ]
        except OverBudget:
            break
        if is_async:
            for i, item in enumerate(chunk, start):
                item[ITEM_INDEX_KEY] = _INDEXES[i] if i < _INDEXES_CACHED else str(i)
        tally.input_bytes += json_size([item.get("input_values") for item in chunk])
        tally.output_bytes += json_size(tally.solution_values)
        tally.solution_values.clear()
        if len(parts) > 1:
            parts.append(b",")
        parts.append(orjson.dumps(chunk, option=orjson.OPT_SORT_KEYS)[1:-1])
        tally.body_bytes += len(parts[-1]) + 1
        if tally.over_json_bounds(problems) or len(problems.items) >= 100:
            break
    parts.append(b"]")
    return b"".join(parts)  # one allocation for the whole body


def field_errors(errors_by_path: Any) -> pb.TaskValidationErrors:
    """Toloka's `{path: {code, message, params?}}` as TaskValidationErrors."""
    out = pb.TaskValidationErrors()
    if not isinstance(errors_by_path, dict):
        return out
    for path, err in errors_by_path.items():
        if not isinstance(err, dict):
            continue
        fe = out.errors.add(
            field=str(path), code=str(err.get("code", "")), message=str(err.get("message", ""))
        )
        params = err.get("params")
        if isinstance(params, list):
            fe.params.extend(params)
    return out


def created_task(data: dict[str, Any], out: pb.CreatedTask) -> None:
    """Fill a CreatedTask from Toloka's task view."""
    out.id = str(data.get("id", ""))
    out.pool_id = str(data.get("pool_id", ""))
    if data.get("created"):
        timestamp_from_toloka(str(data["created"]), out.created)
    if isinstance(data.get("remaining_overlap"), int):
        out.remaining_overlap = data["remaining_overlap"]
    if data.get("origin_task_id"):
        out.origin_task_id = str(data["origin_task_id"])


def batch_from_sync(data: Any) -> pb.TaskBatchResult:
    """A sync `POST /tasks` answer (a task, or `{items, validation_errors}`) as TaskBatchResult."""
    result = pb.TaskBatchResult()
    if isinstance(data, dict) and "items" not in data and "id" in data:
        created_task(data, result.items[0])
        return result
    items = data.get("items") if isinstance(data, dict) else None
    for key, task in (items or {}).items():
        created_task(task, result.items[int(key)])
    invalid = data.get("validation_errors") if isinstance(data, dict) else None
    for key, errs in (invalid or {}).items():
        result.validation_errors[int(key)].CopyFrom(field_errors(errs))
    return result


def create_tasks_response(plan: CreateTasksPlan, data: Any) -> pb.CreateTasksResponse:
    """The CreateTasks reply for Toloka's answer to `plan`."""
    resp = pb.CreateTasksResponse(operation_id=plan.operation_id)
    if plan.is_async:
        operation_from_json(data, resp.operation)
    else:
        resp.batch.CopyFrom(batch_from_sync(data))
    return resp


def batch_from_log(items: list[dict[str, Any]]) -> tuple[pb.TaskBatchResult, list[dict[str, Any]]]:
    """An operation log as per-index task ids and validation errors, plus the items about no task.

    The index is the `__item_idx` the gateway sent; without it, the position among task items.
    """
    result = pb.TaskBatchResult()
    others: list[dict[str, Any]] = []
    position = 0
    for item in items:
        kind = str(item.get("type", ""))
        if kind not in ("TASK_CREATE", "TASK_VALIDATE"):
            others.append(item)
            continue
        data_in = item.get("input") if isinstance(item.get("input"), dict) else {}
        raw_idx = data_in.get(ITEM_INDEX_KEY) if data_in else None
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        idx = (
            int(raw_idx)
            if isinstance(raw_idx, str) and raw_idx.isascii() and raw_idx.isdecimal()
            else position
        )
        position += 1
        output = item.get("output") if isinstance(item.get("output"), dict) else {}
        if item.get("success") and output:
            task = result.items[idx]
            task.id = str(output.get("task_id", ""))
            task.pool_id = str((data_in or {}).get("pool_id", ""))
        else:
            result.validation_errors[idx].CopyFrom(field_errors(output))
    return result, others
