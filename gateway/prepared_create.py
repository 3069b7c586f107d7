"""The CreateTasks use case for a request already translated: a planned body, created once.

`create` is the dedupe's `once` around Toloka's `POST /tasks` (rate limit, retries, settling by
reading the operation) and the shared operation record with its pools. `GatewayService.create_tasks`
plans a CreateTasks message and hands the plan here; an import translates each task as it arrives and
holds its batches as JSON bytes, so its batches come here planned too.
"""

from __future__ import annotations

from collections.abc import Collection

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.dedupe.once import once
from gateway.dedupe.store import Deduplicator, HeldClaim
from gateway.operations.tracker import OperationTracker
from gateway.toloka.protocol import Toloka
from gateway.translate.tasks import CreateTasksPlan, create_tasks_response


class PreparedCreate:
    """Creates planned task batches once per operation_id, across callers and replicas."""

    def __init__(self, *, toloka: Toloka, dedupe: Deduplicator, operations: OperationTracker) -> None:
        self._toloka = toloka
        self._dedupe = dedupe
        self._operations = operations

    async def create(
        self, plan: CreateTasksPlan, *, pools: Collection[str], call: Call
    ) -> pb.CreateTasksResponse:
        """The reply to `plan`, produced once per its operation_id and replayed to duplicates."""

        async def produce(claim: HeldClaim) -> pb.CreateTasksResponse:
            # Toloka performs an async operation_id once, so only a sync create marks its claim
            # sent: from then on no duplicate, retry or other replica re-sends it blind.
            reply = await self._toloka.create_tasks(
                plan, call=call, before_send=None if plan.is_async else claim.sending
            )
            if plan.is_async and isinstance(reply.data, dict):
                await self._operations.remember(reply.data, pools=pools)
            return create_tasks_response(plan, reply.data)

        return await once(
            self._dedupe,
            namespace="tasks",
            operation_id=plan.operation_id,
            fingerprint=plan.fingerprint,
            produce=produce,
            parse=pb.CreateTasksResponse.FromString,
            call=call,
        )
