"""The thin gRPC servicer: metadata and deadline in, service call, domain errors out as statuses.

Each method receives the request as `Incoming` (see `gateway.rpc.incoming`): decoding never fails
before the handler runs, so every call, undecodable or refused by the memory budget included, is
authenticated first, answered with a proper status, logged once and counted in metrics.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.observability.metrics import GatewayMetrics
from gateway.rework.service import ReworkService
from gateway.rpc.auth import CallerAuth, pools_of
from gateway.rpc.incoming import Incoming
from gateway.rpc.status import grpc_code, to_trailers
from gateway.service import GatewayService

log = logging.getLogger("gateway.calls")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]

# Answer this much before the RPC deadline, so a wait that runs out of time still gets its reply out.
DEADLINE_MARGIN_S = 0.05
# Envoy sends the per-try timeout of a call here; the mesh cuts the try when it passes, so every wait
# must end before it, just as before the gRPC deadline.
MESH_TIMEOUT_KEY = "x-envoy-expected-rq-timeout-ms"
_MILLISECONDS = re.compile(r"[0-9]{1,12}")
# Envoy gives every request an id and keeps it across its retries of that request.
MESH_REQUEST_ID_KEY = "x-request-id"
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def mesh_timeout_s(context: Context) -> float | None:
    """The mesh's per-try timeout in seconds, or None when absent, malformed or not positive."""
    for key, value in context.invocation_metadata() or ():
        if key == MESH_TIMEOUT_KEY and isinstance(value, str):
            text = value.strip()
            return int(text) / 1000 if _MILLISECONDS.fullmatch(text) and int(text) > 0 else None
    return None


def mesh_request_id(context: Context) -> str:
    """The mesh's id of this request (the same on each of its retries), or "" when absent or odd."""
    for key, value in context.invocation_metadata() or ():
        if key == MESH_REQUEST_ID_KEY and isinstance(value, str):
            return value if _REQUEST_ID.fullmatch(value) else ""
    return ""


def new_call(context: Context, incoming: Incoming[Any]) -> Call:
    """The call's context before the caller is known: its deadline, the mesh's request id, and
    the request's memory reservation (work that outlives the call may take it over)."""
    call = Call(
        caller="unidentified",
        deadline=call_deadline(context, incoming.received_at),
        retry_key=mesh_request_id(context),
    )
    if incoming.reservation is not None:
        call.held.append(incoming.reservation)
    return call


def call_deadline(context: Context, received_at: float | None = None) -> float | None:
    """The call's absolute deadline: the earlier of the gRPC deadline and the mesh's per-try timeout,
    less a margin to get the answer out.

    The per-try timeout counts from `received_at` (the message had arrived; decoding a large one
    takes a while) when given: the mesh's timer was running by then.
    """
    mesh = mesh_timeout_s(context)
    if mesh is not None and received_at is not None:
        mesh -= time.monotonic() - received_at
    limits = [t for t in (context.time_remaining(), mesh) if t is not None]
    if not limits:
        return None
    remaining = min(limits)
    return time.monotonic() + remaining - min(DEADLINE_MARGIN_S, max(remaining, 0.0) * 0.1)


class TolokaGatewayServicer:
    """Adapts gRPC calls to GatewayService and ReworkService."""

    def __init__(
        self,
        *,
        service: GatewayService,
        auth: CallerAuth,
        rework: ReworkService,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._service = service
        self.metrics = metrics
        self._rework = rework
        self._auth = auth

    def _admit(self, method: str, incoming: Incoming[Req], context: Context, call: Call) -> Req:
        """The request, once the caller is identified and allowed to call (no quota is spent before).

        A request that could not be decoded, or that the memory budget refused, is refused only
        after authentication, so an unauthenticated caller learns nothing and costs one log line.
        """
        call.caller = self._auth.identify(context)
        if incoming.refusal is not None or incoming.message is None:
            self._auth.authorize(call.caller, method, ())
            raise incoming.refusal or errors.InvalidArgument("the request is empty")
        self._auth.authorize(call.caller, method, pools_of(incoming.message))
        call.pools = self._auth.allowed_pools(call.caller)
        return incoming.message

    async def _fail(self, context: Context, call: Call, exc: Exception) -> None:
        if isinstance(exc, errors.GatewayError):
            error = exc
        else:
            log.error("unhandled error", exc_info=exc, extra={"request_id": call.request_id})
            error = errors.Internal(f"internal error; quote request id {call.request_id}")
        trailers = to_trailers(error, request_id=call.request_id)
        await context.abort(trailers.code, trailers.message, trailing_metadata=trailers.metadata)

    async def _unary(
        self,
        method: str,
        fn: Callable[[Req, Call], Awaitable[Resp]],
        incoming: Incoming[Req],
        context: Context,
    ) -> Resp:
        call = new_call(context, incoming)
        started = time.perf_counter()
        code = "OK"
        try:
            request = self._admit(method, incoming, context, call)
            return await fn(request, call)
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as exc:
            code = grpc_code(exc).name if isinstance(exc, errors.GatewayError) else "INTERNAL"
            await self._fail(context, call, exc)
            raise  # unreachable: abort raises
        finally:
            call.release_held()
            self._log(method, call, code, started)

    def _log(self, method: str, call: Call, code: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.observe_call(method, code, elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "call",
                extra={
                    "method": method,
                    "caller": call.caller,
                    "status": code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": call.request_id,
                    "toloka_request_ids": call.toloka_request_ids,
                },
            )

    async def CreateTasks(
        self, request: Incoming[pb.CreateTasksRequest], context: Context
    ) -> pb.CreateTasksResponse:
        return await self._unary("CreateTasks", self._service.create_tasks, request, context)

    async def GetOperation(
        self, request: Incoming[pb.GetOperationRequest], context: Context
    ) -> pb.GetOperationResponse:
        return await self._unary("GetOperation", self._service.get_operation, request, context)

    async def WaitOperation(
        self, request: Incoming[pb.WaitOperationRequest], context: Context
    ) -> pb.WaitOperationResponse:
        return await self._unary("WaitOperation", self._service.wait_operation, request, context)

    async def SetReworkRules(
        self, request: Incoming[pb.SetReworkRulesRequest], context: Context
    ) -> pb.SetReworkRulesResponse:
        return await self._unary("SetReworkRules", self._rework.set_rework_rules, request, context)

    async def GetReworkRules(
        self, request: Incoming[pb.GetReworkRulesRequest], context: Context
    ) -> pb.GetReworkRulesResponse:
        return await self._unary("GetReworkRules", self._rework.get_rework_rules, request, context)

    async def WatchOperation(
        self, request: Incoming[pb.WatchOperationRequest], context: Context
    ) -> AsyncIterator[pb.WatchOperationResponse]:
        call = new_call(context, request)
        started = time.perf_counter()
        code = "OK"
        try:
            message = self._admit("WatchOperation", request, context, call)
            async for update in self._service.watch_operation(message, call):
                yield update
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as exc:
            code = grpc_code(exc).name if isinstance(exc, errors.GatewayError) else "INTERNAL"
            await self._fail(context, call, exc)
        finally:
            call.release_held()
            self._log("WatchOperation", call, code, started)
