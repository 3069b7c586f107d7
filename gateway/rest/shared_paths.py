"""Where the REST front and gRPC overlap, one implementation: task creation and operation reads.

- `POST /api/v1/tasks?operation_id=...` (async or sync) is turned into the CreateTasks request it
  is and run by the same use case as gRPC CreateTasks: the same dedupe key (`tasks:<operation_id>`)
  and fingerprint, so one id sent over gRPC and over REST is one Toloka operation, and a duplicate
  is answered with the first answer (the operation, or the created tasks: `sync_answer`). A body the gRPC request cannot express
  (a field it does not know) is relayed as it is instead; Toloka performs an async operation_id once.
- `POST /api/v1/task-suites?operation_id=...` (async or sync) goes through the same dedupe
  (`suite_creates`, key `task-suites:<operation_id>`).
- `GET /api/v1/operations/{uuid}` is answered from the shared poller: a cached state younger than
  its freshness bound, else one read shared by every caller and replica, so a thousand toloka-kit
  clients waiting on one operation cost what one does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web
from google.protobuf import json_format

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.dedupe.store import Deduplicator
from gateway.operations.tracker import OperationTracker
from gateway.rest.relay_protocol import Relay
from gateway.rest.suite_creates import SuiteCreates
from gateway.rest.sync_answer import ITEM_INDEX_KEY, sync_answer
from gateway.translate.ids import UUID

_CREATE_FLAGS = ("allow_defaults", "open_pool", "skip_invalid_items")
_CREATE_QUERY = frozenset({"operation_id", "async_mode", *_CREATE_FLAGS})


class UseCases(Protocol):
    """The gRPC use cases the REST front shares (`gateway.service.GatewayService`)."""

    async def create_tasks(self, req: pb.CreateTasksRequest, call: Call) -> pb.CreateTasksResponse:
        """Create tasks once per operation_id."""
        ...

    async def readable_operation_id(self, operation_id: str, call: Call) -> str:
        """The checked operation id, or PermissionDenied when the caller may not read it."""
        ...


def _task(item: Any) -> pb.Task | None:
    if not isinstance(item, dict):
        return None
    fields = {k: v for k, v in item.items() if k != ITEM_INDEX_KEY and v is not None}
    try:
        return json_format.ParseDict(fields, pb.Task())
    except json_format.ParseError:
        return None


def create_tasks_request(query: Mapping[str, str], body: Any) -> pb.CreateTasksRequest | None:
    """The CreateTasks request a `POST /tasks` with an operation_id is, or None when it is not one.

    None (relay it as it is) for one without operation_id, an unknown query parameter, or a task
    with a field the gRPC request does not have. Without `async_mode` a create is synchronous, as
    Toloka takes it.
    """
    if not query.get("operation_id") or set(query) - _CREATE_QUERY:
        return None
    items = body if isinstance(body, list) else [body]
    tasks = [_task(item) for item in items]
    if not tasks or any(t is None for t in tasks):
        return None
    req = pb.CreateTasksRequest(
        operation_id=query["operation_id"], async_mode=query.get("async_mode") == "true"
    )
    req.tasks.extend(t for t in tasks if t is not None)
    for flag in _CREATE_FLAGS:
        setattr(req, flag, query.get(flag) == "true")
    return req


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


class SharedPaths:
    """The REST requests answered by the gateway's own use cases instead of a plain relay."""

    def __init__(
        self, *, tasks: UseCases, operations: OperationTracker, dedupe: Deduplicator, toloka: Relay
    ) -> None:
        self._tasks = tasks
        self._operations = operations
        self._suites = SuiteCreates(dedupe=dedupe, toloka=toloka, operations=operations)

    async def create_suites(
        self, path: str, query: Mapping[str, str], raw: bytes, body: Any, call: Call
    ) -> web.Response:
        """Create task suites once per operation_id (`suite_creates`)."""
        return await self._suites.create(path, query, raw, body, call)

    async def create_tasks(self, req: pb.CreateTasksRequest, body: Any, call: Call) -> web.Response:
        """Run CreateTasks and answer as Toloka does: the operation (async), or the created tasks (sync)."""
        reply = await self._tasks.create_tasks(req, call)
        if not req.async_mode:
            return json_response(sync_answer(body, reply), 201)
        op = await self._operations.get(reply.operation_id, call=call)
        return json_response(op, 202)

    async def operation(self, operation_id: str, call: Call) -> web.Response:
        """The operation's state from the shared poller (PermissionDenied for pools the caller may not use)."""
        operation_id = await self._tasks.readable_operation_id(operation_id, call)
        return json_response(await self._operations.get(operation_id, call=call))


def operation_id_of(method: str, tail: str) -> str | None:
    """The id of a `GET /operations/{uuid}` request, else None."""
    parts = tail.split("/")
    if method == "GET" and len(parts) == 3 and parts[1] == "operations" and UUID.fullmatch(parts[2]):
        return parts[2]
    return None
