"""`POST /api/v1/task-suites?operation_id=...`, once per operation_id across callers and replicas, as
CreateTasks is for tasks: the same dedupe (key `task-suites:<operation_id>`, a fingerprint of the
query and the canonical body), so duplicates get the first answer and a reused id with other suites
is 409 `OPERATION_ALREADY_EXISTS`. Toloka's refusal reaches the caller as Toloka sent it and is not
stored, so a retry after the pool's state changed runs again.

- Async (`async_mode=true`): re-sent after an ambiguous failure (Toloka performs an async
  operation_id once), and an answer lost on the way is settled by reading the operation.
- Sync (toloka-kit's `create_task_suites` sends an operation_id there too): Toloka is not known to
  dedupe it, so the claim is marked sent before the request leaves and the request is never re-sent
  blind; an answer lost on the way is OUTCOME_UNKNOWN, as for a synchronous CreateTasks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from gateway import errors
from gateway.call import Call
from gateway.dedupe.store import Deduplicator, HeldClaim
from gateway.operations.tracker import OperationTracker
from gateway.request_kinds import KIND_CREATE_TASK_SUITES
from gateway.rest.errors import RelayedRefusal
from gateway.rest.relay_protocol import Relay
from gateway.toloka.error_map import OPERATION_ALREADY_EXISTS
from gateway.toloka.request import Idempotency, Reply, TolokaRequest

NAMESPACE = "task-suites"


def fingerprint(query: Mapping[str, str], body: Any) -> str:
    """A digest of the request without its operation_id (keys sorted at every level)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(orjson.dumps({k: v for k, v in sorted(query.items()) if k != "operation_id"}))
    h.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def pools_of(body: Any) -> set[str]:
    """The pools the suites go to."""
    items = body if isinstance(body, list) else [body]
    return {str(i["pool_id"]) for i in items if isinstance(i, dict) and i.get("pool_id") is not None}


async def read_whole(reply: Reply) -> tuple[int, bytes]:
    """The answer's status and whole body (a create's answer is one operation: small)."""
    relayed = reply.relayed
    if relayed is None:  # settled by reading the operation
        return reply.status, orjson.dumps(reply.data)
    try:
        return relayed.status, b"".join([chunk async for chunk in relayed.chunks()])
    finally:
        relayed.release()


class SuiteCreates:
    """Task-suite creation through the dedupe."""

    def __init__(self, *, dedupe: Deduplicator, toloka: Relay, operations: OperationTracker) -> None:
        self._dedupe = dedupe
        self._toloka = toloka
        self._operations = operations

    async def _existing(self, operation_id: str, call: Call) -> dict[str, Any] | None:
        try:
            return await self._operations.get(operation_id, call=call)
        except errors.NotFound:
            return None

    async def create(
        self, path: str, query: Mapping[str, str], raw: bytes, body: Any, call: Call
    ) -> web.Response:
        """Create the suites once per operation_id (async or sync); every duplicate gets the first answer."""
        operation_id = query["operation_id"].lower()
        is_async = query.get("async_mode") == "true"

        async def settle() -> Reply | None:
            op = await self._existing(operation_id, call)
            return None if op is None else Reply(202, op)

        async def produce(claim: HeldClaim) -> bytes:
            idempotency = (
                Idempotency(resend_after_acted=True, settle=settle)
                if is_async
                else Idempotency(resend_after_acted=False, before_send=claim.sending)
            )
            request = TolokaRequest(
                kind=KIND_CREATE_TASK_SUITES,
                method="POST",
                path=path,
                body=raw,
                cost=len(body) if isinstance(body, list) else 1,
                idempotency=idempotency,
                relay=True,
            )
            status, answer = await read_whole(await self._toloka.relay(request, call))
            if is_async and status == 409 and OPERATION_ALREADY_EXISTS.encode() in answer:
                settled = await settle()  # an earlier attempt, lost on the way, created it
                if settled is not None:
                    status, answer = settled.status, orjson.dumps(settled.data)
            if status >= 300:
                raise RelayedRefusal(status, answer)
            created = orjson.loads(answer)
            if is_async and isinstance(created, dict) and created.get("id"):
                await self._operations.remember(created, pools=pools_of(body))
            return orjson.dumps({"status": status, "body": created})

        outcome, _ = await self._dedupe.run(
            f"{NAMESPACE}:{operation_id}", fingerprint(query, body), produce, call=call
        )
        stored = orjson.loads(outcome)
        return web.Response(
            status=int(stored["status"]), body=orjson.dumps(stored["body"]), content_type="application/json"
        )
