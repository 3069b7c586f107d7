"""Toloka's Operation JSON <-> the Operation message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.translate.values import json_to_struct

STATUSES = {
    "PENDING": pb.OPERATION_STATUS_PENDING,
    "RUNNING": pb.OPERATION_STATUS_RUNNING,
    "SUCCESS": pb.OPERATION_STATUS_SUCCESS,
    "FAIL": pb.OPERATION_STATUS_FAIL,
}
# Toloka never changes an operation in one of these again (the Lua scripts of the shared poller
# spell the same two out, in gateway/operations/redis_operation_store.py).
FINAL_STATUSES = frozenset({"SUCCESS", "FAIL"})


def is_final(operation: dict[str, Any]) -> bool:
    """True when Toloka reports the operation finished (SUCCESS or FAIL)."""
    return operation.get("status") in FINAL_STATUSES


def timestamp_from_toloka(text: str, out: timestamp_pb2.Timestamp) -> None:
    """Toloka's zone-less UTC ISO-8601 (`2024-01-02T03:04:05.678`) into a Timestamp."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    out.FromDatetime(when)


def operation_from_json(data: Any, out: pb.Operation) -> pb.Operation:
    """Fill an Operation message from Toloka's JSON and return it."""
    if not isinstance(data, dict):
        return out
    out.id = str(data.get("id", ""))
    out.type = str(data.get("type", ""))
    out.status = STATUSES.get(str(data.get("status", "")), pb.OPERATION_STATUS_UNSPECIFIED)
    for name in ("submitted", "started", "finished"):
        if data.get(name):
            timestamp_from_toloka(str(data[name]), getattr(out, name))
    progress = data.get("progress")
    if isinstance(progress, int | float):
        out.progress = int(progress)
    for name in ("parameters", "details"):
        if isinstance(data.get(name), dict):
            json_to_struct(data[name], getattr(out, name))
    return out
