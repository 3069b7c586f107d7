"""A synchronous CreateTasks reply as Toloka's own answer to `POST /tasks?async_mode=false`.

Toloka answers a batch with `{"items": {index: task}, "validation_errors": {index: {field: error}}}`
and a single task object with the created task. The stored gRPC reply keeps what Toloka said about
each created task (id, pool, created, remaining overlap, origin); the rest of each task is the one
the caller sent, so a replayed answer reads as the first one did.
"""

from __future__ import annotations

import datetime
from typing import Any

from google.protobuf import json_format

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb

ITEM_INDEX_KEY = "__item_idx"


def toloka_time(ts: Any) -> str:
    """A Timestamp in Toloka's format (UTC, no zone suffix, milliseconds)."""
    when = datetime.datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=datetime.UTC)
    return when.replace(tzinfo=None).isoformat(timespec="milliseconds")


def _created(task: pb.CreatedTask, sent: Any) -> dict[str, Any]:
    item = {k: v for k, v in sent.items() if k != ITEM_INDEX_KEY} if isinstance(sent, dict) else {}
    item["id"] = task.id
    item["pool_id"] = task.pool_id
    if task.HasField("created"):
        item["created"] = toloka_time(task.created)
    if task.HasField("remaining_overlap"):
        item["remaining_overlap"] = task.remaining_overlap
    if task.origin_task_id:
        item["origin_task_id"] = task.origin_task_id
    return item


def _errors(errs: pb.TaskValidationErrors) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in errs.errors:
        error: dict[str, Any] = {"code": e.code, "message": e.message}
        if e.HasField("params"):
            error["params"] = json_format.MessageToDict(e.params)
        out[e.field] = error
    return out


def sync_answer(body: Any, reply: pb.CreateTasksResponse) -> Any:
    """Toloka's answer to the synchronous create `body` (a task list, or one task) that `reply` describes."""
    sent = body if isinstance(body, list) else [body]
    batch = reply.batch
    items = {
        str(i): _created(task, sent[i] if i < len(sent) else None) for i, task in sorted(batch.items.items())
    }
    if not isinstance(body, list) and "0" in items:
        return items["0"]
    return {
        "items": items,
        "validation_errors": {str(i): _errors(e) for i, e in sorted(batch.validation_errors.items())},
    }
