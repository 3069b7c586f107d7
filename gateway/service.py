"""Use cases behind the gRPC methods. No grpc and no HTTP here: messages in, messages out."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.dedupe.store import Deduplicator
from gateway.operations.tracker import OperationTracker
from gateway.prepared_create import PreparedCreate
from gateway.settings import PollerSettings, ServerSettings
from gateway.toloka.protocol import Toloka
from gateway.translate.ids import check_operation_id
from gateway.translate.operations import is_final, operation_from_json
from gateway.translate.tasks import batch_from_log, plan_create_tasks
from gateway.translate.values import json_to_struct

TASK_BATCH_CREATE = "TASK.BATCH_CREATE"
LOG_RESERVE_S = 2.0  # of a WaitOperation deadline, kept for GET /operations/{id}/log


# Namespace of the operation ids the gateway derives for creates sent without one.
DERIVED_OPERATION_IDS = uuid.UUID("6f1d3c1e-2b7a-5d48-9a51-3e0c7b9f4a21")


def new_operation_id(call: Call) -> str:
    """An operation_id for a create that came without one.

    Derived from the caller and the mesh's request id when there is one, so a mesh's retry of the
    same request is a duplicate of it (one creation), not a new request; else a random one.
    """
    if call.retry_key:
        return str(uuid.uuid5(DERIVED_OPERATION_IDS, f"{call.caller}\n{call.retry_key}"))
    return str(uuid.uuid4())


def required_operation_id(value: str) -> str:
    """The operation id from a request, or InvalidArgument when it is missing or malformed."""
    problems = errors.ViolationList()
    if not value:
        problems.add("operation_id", "is required", "REQUIRED")
    check_operation_id(value, problems)
    problems.raise_if_any()
    return value.lower()


class GatewayService:
    """CreateTasks, GetOperation, WaitOperation and WatchOperation."""

    def __init__(
        self,
        *,
        toloka: Toloka,
        dedupe: Deduplicator,
        operations: OperationTracker,
        server: ServerSettings,
        poller: PollerSettings,
    ) -> None:
        self._toloka = toloka
        self._operations = operations
        self._creates = PreparedCreate(toloka=toloka, dedupe=dedupe, operations=operations)
        self._server = server
        self._poller = poller

    async def create_tasks(self, req: pb.CreateTasksRequest, call: Call) -> pb.CreateTasksResponse:
        """Create tasks once per operation_id, however many callers and replicas send it."""
        plan = plan_create_tasks(
            req, max_tasks=self._server.max_tasks_per_request, new_operation_id=lambda: new_operation_id(call)
        )

        return await self._creates.create(plan, pools={t.pool_id for t in req.tasks}, call=call)

    async def readable_operation_id(self, operation_id: str, call: Call) -> str:
        """The checked operation id, or PermissionDenied when the caller may not read it.

        A caller limited to some pools may read only operations the gateway created in those
        pools; others cannot be attributed to a pool, so they are refused before any Toloka read.
        """
        operation_id = required_operation_id(operation_id)
        if call.pools is None:
            return operation_id
        pools = await self._operations.pools_of(operation_id)
        if pools is None or not pools <= call.pools:
            raise errors.PermissionDenied(
                f"caller {call.caller!r} may not read operation {operation_id}: it was not created "
                "through this gateway in a pool the caller may use",
                reason="OPERATION_NOT_ALLOWED",
                metadata={"caller": call.caller, "operation_id": operation_id},
            )
        return operation_id

    async def get_operation(self, req: pb.GetOperationRequest, call: Call) -> pb.GetOperationResponse:
        """The operation's current state."""
        op = await self._operations.get(await self.readable_operation_id(req.operation_id, call), call=call)
        resp = pb.GetOperationResponse()
        operation_from_json(op, resp.operation)
        return resp

    async def wait_operation(self, req: pb.WaitOperationRequest, call: Call) -> pb.WaitOperationResponse:
        """Wait for the end of an operation, or return its latest state when time runs out."""
        operation_id = await self.readable_operation_id(req.operation_id, call)
        if req.HasField("timeout"):
            seconds = req.timeout.ToTimedelta().total_seconds()
            if seconds < 0:
                raise errors.InvalidArgument(
                    "timeout must not be negative",
                    violations=[errors.FieldViolation("timeout", "must not be negative", "OUT_OF_RANGE")],
                )
        else:
            seconds = self._poller.max_wait_s
        now = call.clock.now()
        until = now + seconds
        left = call.remaining()
        if req.include_log and left is not None:
            # Keep part of the deadline for reading the log once the operation is done.
            until = min(until, now + left - min(LOG_RESERVE_S, left / 4))
        op = await self._operations.wait(operation_id, until=until, call=call)
        resp = pb.WaitOperationResponse(done=is_final(op))
        operation_from_json(op, resp.operation)
        if req.include_log and resp.done and op.get("type") == TASK_BATCH_CREATE:
            items = await self._toloka.get_operation_log(operation_id, call)
            batch, others = batch_from_log(items)
            resp.log.CopyFrom(batch)
            for item in others:
                json_to_struct(item, resp.other_log_items.add())
        return resp

    async def watch_operation(
        self, req: pb.WatchOperationRequest, call: Call
    ) -> AsyncIterator[pb.WatchOperationResponse]:
        """Each change of status or progress, until the operation is finished."""
        operation_id = await self.readable_operation_id(req.operation_id, call)
        async for op in self._operations.watch(operation_id, call=call):
            resp = pb.WatchOperationResponse()
            operation_from_json(op, resp.operation)
            yield resp
