"""The thin gRPC servicer: metadata and deadline in, service call, domain errors out as statuses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_status import rpc_status

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.call import Call
from gateway.observability.metrics import GatewayMetrics
from gateway.rework.service import ReworkService
from gateway.rpc.auth import CallerAuth, pools_of
from gateway.rpc.status import grpc_code, to_status
from gateway.service import GatewayService

log = logging.getLogger("gateway.calls")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

# Answer this much before the RPC deadline, so a wait that runs out of time still gets its reply out.
DEADLINE_MARGIN_S = 0.05


class TolokaGatewayServicer(pb_grpc.TolokaGatewayServicer):
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
        self._metrics = metrics
        self._rework = rework
        self._auth = auth

    def _call_for(self, context: grpc.aio.ServicerContext[Any, Any]) -> Call:
        remaining = context.time_remaining()
        deadline = None
        if remaining is not None:
            deadline = time.monotonic() + remaining - min(DEADLINE_MARGIN_S, remaining * 0.1)
        return Call(caller="unidentified", deadline=deadline)

    def _admit(
        self, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any], call: Call
    ) -> None:
        """Identify and authorise the caller before any service code runs (no quota is spent)."""
        call.caller = self._auth.identify(context)
        self._auth.authorize(call.caller, method, pools_of(request))

    async def _fail(self, context: grpc.aio.ServicerContext[Any, Any], call: Call, exc: Exception) -> None:
        if isinstance(exc, errors.GatewayError):
            error = exc
        else:
            log.error("unhandled error", exc_info=exc, extra={"request_id": call.request_id})
            error = errors.Internal(f"internal error; quote request id {call.request_id}")
        await context.abort_with_status(  # type: ignore[attr-defined]
            rpc_status.to_status(to_status(error, request_id=call.request_id))
        )

    async def _unary(
        self,
        method: str,
        fn: Callable[[Req, Call], Awaitable[Resp]],
        request: Req,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Resp:
        call = self._call_for(context)
        started = time.perf_counter()
        code = "OK"
        try:
            self._admit(method, request, context, call)
            return await fn(request, call)
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as exc:
            code = grpc_code(exc).name if isinstance(exc, errors.GatewayError) else "INTERNAL"
            await self._fail(context, call, exc)
            raise  # unreachable: abort raises
        finally:
            self._log(method, call, code, started)

    def _log(self, method: str, call: Call, code: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.observe_call(method, code, elapsed)
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
        self, request: pb.CreateTasksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateTasksResponse:
        return await self._unary("CreateTasks", self._service.create_tasks, request, context)

    async def GetOperation(
        self, request: pb.GetOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetOperationResponse:
        return await self._unary("GetOperation", self._service.get_operation, request, context)

    async def WaitOperation(
        self, request: pb.WaitOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.WaitOperationResponse:
        return await self._unary("WaitOperation", self._service.wait_operation, request, context)

    async def SetReworkRules(
        self, request: pb.SetReworkRulesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SetReworkRulesResponse:
        return await self._unary("SetReworkRules", self._rework.set_rework_rules, request, context)

    async def GetReworkRules(
        self, request: pb.GetReworkRulesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetReworkRulesResponse:
        return await self._unary("GetReworkRules", self._rework.get_rework_rules, request, context)

    async def WatchOperation(
        self, request: pb.WatchOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchOperationResponse]:
        call = self._call_for(context)
        started = time.perf_counter()
        code = "OK"
        try:
            self._admit("WatchOperation", request, context, call)
            async for update in self._service.watch_operation(request, call):
                yield update
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as exc:
            code = grpc_code(exc).name if isinstance(exc, errors.GatewayError) else "INTERNAL"
            await self._fail(context, call, exc)
        finally:
            self._log("WatchOperation", call, code, started)
