"""The TolokaGateway servicer: one line per RPC, each a delegation to its use case in the
call's Toloka account (`AccountUseCases`, chosen by `Call.account`).

Every method takes the decoded request and the call's `Call` context, because the
`CallInterceptor` (`gateway.rpc.interceptor`) runs around each one: it builds the `Call`
(deadline, caller, allowed pools), authenticates, turns domain errors into statuses, and logs
and counts the call. The server installs both together (`gateway.rpc.server.build_server`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.bulk_import import ImportService
from gateway.call import Call
from gateway.quota import QuotaService
from gateway.rework.service import ReworkService
from gateway.service import GatewayService


class AccountUseCases(Protocol):
    """The use cases of one Toloka account (`gateway.account_stack.AccountStack`)."""

    @property
    def service(self) -> GatewayService: ...

    @property
    def rework(self) -> ReworkService: ...

    @property
    def imports(self) -> ImportService: ...

    @property
    def quota(self) -> QuotaService: ...


class TolokaGatewayServicer:
    """Adapts each RPC to GatewayService, ImportService, ReworkService or QuotaService of its account."""

    def __init__(self, *, accounts: Callable[[Call], AccountUseCases]) -> None:
        self._of = accounts

    async def CreateTasks(self, request: pb.CreateTasksRequest, call: Call) -> pb.CreateTasksResponse:
        return await self._of(call).service.create_tasks(request, call)

    async def GetOperation(self, request: pb.GetOperationRequest, call: Call) -> pb.GetOperationResponse:
        return await self._of(call).service.get_operation(request, call)

    async def WaitOperation(self, request: pb.WaitOperationRequest, call: Call) -> pb.WaitOperationResponse:
        return await self._of(call).service.wait_operation(request, call)

    def ImportTasks(
        self, requests: AsyncIterator[pb.ImportTasksRequest], call: Call
    ) -> AsyncIterator[pb.ImportTasksResponse]:
        return self._of(call).imports.import_tasks(requests, call)

    def WatchOperation(
        self, request: pb.WatchOperationRequest, call: Call
    ) -> AsyncIterator[pb.WatchOperationResponse]:
        return self._of(call).service.watch_operation(request, call)

    async def SetReworkRules(
        self, request: pb.SetReworkRulesRequest, call: Call
    ) -> pb.SetReworkRulesResponse:
        return await self._of(call).rework.set_rework_rules(request, call)

    async def GetReworkRules(
        self, request: pb.GetReworkRulesRequest, call: Call
    ) -> pb.GetReworkRulesResponse:
        return await self._of(call).rework.get_rework_rules(request, call)

    async def GetQuota(self, request: pb.GetQuotaRequest, call: Call) -> pb.GetQuotaResponse:
        return await self._of(call).quota.get_quota(request, call)
