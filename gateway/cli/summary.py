"""Readable summaries of replies, and their JSON form in Toloka's names and types.

The JSON is the proto JSON mapping with proto field names (Toloka's own, e.g. `operation_id`,
`total_count`), made to read as Toloka's: an operation's `status` is `"SUCCESS"`, not
`"OPERATION_STATUS_SUCCESS"`, and whole numbers are integers (`"total_count": 2`, not `2.0`; Struct
numbers are doubles on the wire). `get-rework-rules --json` keeps the mapping set-rework-rules reads.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.cli.progress import status_name

STATUS_PREFIX = "OPERATION_STATUS_"


def toloka_values(value: Any, key: str = "") -> Any:
    """`value` with operation statuses named as Toloka names them and whole floats as integers."""
    if isinstance(value, dict):
        return {k: toloka_values(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [toloka_values(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if key == "status" and isinstance(value, str):
        return value.removeprefix(STATUS_PREFIX)
    return value


_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def _int64_as_numbers(message: Message, data: dict[str, Any]) -> None:
    """The proto JSON mapping writes 64-bit integers as strings; Toloka's JSON has numbers."""
    for field in message.DESCRIPTOR.fields:
        if field.name not in data:
            continue
        if field.is_repeated:  # no reply has a repeated 64-bit integer; lists of messages may hold them
            if field.type == FieldDescriptor.TYPE_MESSAGE and isinstance(data[field.name], list):
                for item, item_data in zip(getattr(message, field.name), data[field.name], strict=True):
                    _int64_as_numbers(item, item_data)
            continue
        if field.type in _INT64:
            data[field.name] = int(data[field.name])
        elif field.type == FieldDescriptor.TYPE_MESSAGE and isinstance(data[field.name], dict):
            _int64_as_numbers(getattr(message, field.name), data[field.name])


def to_json(message: Message) -> dict[str, Any]:
    """A reply as JSON in Toloka's names and types (see the module's doc)."""
    raw = json_format.MessageToDict(message, preserving_proto_field_name=True)
    _int64_as_numbers(message, raw)
    out: dict[str, Any] = toloka_values(raw)
    return out


def dumps(data: dict[str, Any]) -> str:
    """Indented JSON for stdout."""
    return json.dumps(data, indent=2, sort_keys=False)


def operation_line(op: pb.Operation) -> str:
    """`operation <id> (TASK.BATCH_CREATE): SUCCESS, 100%`."""
    return f"operation {op.id} ({op.type or 'unknown type'}): {status_name(op.status)}, {op.progress}%"


def batch_lines(batch: pb.TaskBatchResult) -> list[str]:
    """Created count and every per-task validation error, by input index and field path."""
    lines = [f"created {len(batch.items)} task(s)"]
    if batch.validation_errors:
        lines.append(f"{len(batch.validation_errors)} task(s) not created:")
        for index in sorted(batch.validation_errors):
            for e in batch.validation_errors[index].errors:
                lines.append(f"  task {index}: {e.field or '(task)'}: {e.code}: {e.message}".rstrip(": "))
    return lines


def create_lines(resp: pb.CreateTasksResponse) -> list[str]:
    """What CreateTasks answered."""
    lines = [
        f"operation_id {resp.operation_id}"
        + (" (replayed: an earlier call's answer)" if resp.replayed else "")
    ]
    if resp.HasField("operation"):
        lines.append(operation_line(resp.operation))
    elif resp.HasField("batch"):
        lines.extend(batch_lines(resp.batch))
    return lines


def wait_lines(resp: pb.WaitOperationResponse, *, with_log: bool) -> list[str]:
    """What WaitOperation answered: the state, and the outcome per task when the log was asked for."""
    lines = [operation_line(resp.operation)]
    if not resp.done:
        lines.append(
            "not finished yet (timeout reached); wait again with: "
            f"toloka-gateway client wait {resp.operation.id}"
        )
    if with_log and resp.HasField("log"):
        lines.extend(batch_lines(resp.log))
    lines.extend(f"log item: {json.dumps(to_json(item))}" for item in resp.other_log_items)
    return lines


def _trigger(rule: pb.ReworkRule) -> str:
    kind = rule.WhichOneof("trigger")
    if kind == "skill_change":
        skill = rule.skill_change.skill_id
        return f"skill change ({'skill ' + skill if skill else 'any skill'})"
    if kind == "restriction":
        return "Toloker blocked (restriction)"
    if kind == "assessment":
        event = pb.AssessmentEvent.Name(rule.assessment.assessment_event)
        return f"assignment {event.removeprefix('ASSESSMENT_EVENT_')}"
    return "no trigger"


def rule_lines(rules: list[pb.ReworkRule]) -> list[str]:
    """One line per re-execution rule."""
    if not rules:
        return ["no re-execution rules"]
    lines = []
    for i, rule in enumerate(rules, start=1):
        conditions = "".join(
            f" and {pb.ConditionKey.Name(c.key).removeprefix('CONDITION_KEY_').lower()}"
            f" {pb.ComparisonOperator.Name(c.operator).removeprefix('COMPARISON_OPERATOR_')} {c.value}"
            for c in rule.conditions
        )
        reopen = ", reopen pool" if rule.open_pool else ""
        lines.append(f"{i}. {_trigger(rule)}{conditions}: overlap {rule.delta:+d}{reopen}")
    return lines
