"""One Toloka account's layers (`AccountStack`), and the choice of a call's (`AccountStacks`).

Every account the gateway serves has its own Toloka client (its URL, key and act-under id), rate
limiter, dedupe store, operation poller and rework pool lock, on the one shared Redis under the
account's key prefix: two accounts never share a budget, an operation id, a lease or a poll loop.
The transports (gRPC servicer, REST front, rate-limit service) are shared; each call reaches its
account's stack by `Call.account`, which the caller's authorisation set.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from gateway.bulk_import import ImportService
from gateway.call import Call
from gateway.dedupe import build_deduplicator
from gateway.dedupe.store import Deduplicator
from gateway.observability.metrics import GatewayMetrics
from gateway.operations import build_operation_tracker
from gateway.operations.tracker import OperationTracker
from gateway.prepared_create import PreparedCreate
from gateway.quota import QuotaService, configured_kinds
from gateway.ratelimit import AdmissionLimiter
from gateway.ratelimit.decision import limit_key
from gateway.ratelimit.factory import build_rate_limiter
from gateway.rest import SharedPaths
from gateway.rework import ReworkService, build_rework_service
from gateway.service import GatewayService
from gateway.settings import ServerSettings, Settings
from gateway.settings.accounts import DEFAULT_ACCOUNT, Account
from gateway.settings.parsing import section
from gateway.settings.rate_limits import rate_limits_from
from gateway.shared_state import SharedRedis
from gateway.toloka.client import TolokaClient


@dataclass(frozen=True)
class AccountStack:
    """The layers of one account, and the use cases built on them."""

    name: str
    base_url: str  # where its Toloka is (its URL, or its in-process emulator's)
    toloka: TolokaClient
    limiter: AdmissionLimiter
    dedupe: Deduplicator
    operations: OperationTracker
    rework: ReworkService
    service: GatewayService
    imports: ImportService
    quota: QuotaService
    paths: SharedPaths  # what the REST front answers with the use cases instead of a relay

    async def close(self) -> None:
        """Close every layer; dedupe first, so creates whose callers left still finish (and
        remember their operations)."""
        for part in (self.dedupe, self.operations, self.rework.lock, self.limiter, self.toloka):
            with contextlib.suppress(Exception):
                await part.close()


async def build_account_stack(
    account: Account,
    *,
    base_url: str,
    shared: SharedRedis | None,
    server: ServerSettings,
    metrics: GatewayMetrics,
) -> AccountStack:
    """Every layer of `account`, its Toloka client started (at `base_url`: its URL, or an emulator's)."""
    limiter = build_rate_limiter(account.limits, shared)
    dedupe = build_deduplicator(account.dedupe, shared)
    toloka = TolokaClient(
        settings=account.toloka, base_url=base_url, limiter=limiter, metrics=metrics, account=account.name
    )
    await toloka.start()
    operations = build_operation_tracker(account.poller, shared, toloka.get_operation)
    service = GatewayService(
        toloka=toloka, dedupe=dedupe, operations=operations, server=server, poller=account.poller
    )
    return AccountStack(
        name=account.name,
        base_url=base_url,
        toloka=toloka,
        limiter=limiter,
        dedupe=dedupe,
        operations=operations,
        rework=build_rework_service(account.rework, toloka=toloka, dedupe=dedupe, shared=shared),
        service=service,
        imports=ImportService(
            creates=PreparedCreate(toloka=toloka, dedupe=dedupe, operations=operations),
            max_tasks_per_request=server.max_tasks_per_request,
        ),
        quota=QuotaService(
            limiter=limiter, configured_kinds=configured_kinds(account.limits), account=account.name
        ),
        paths=SharedPaths(tasks=service, operations=operations, dedupe=dedupe, toloka=toloka),
    )


class AccountStacks:
    """Every account's stack, by name; a call's is the one its `Call.account` names."""

    def __init__(self, stacks: Mapping[str, AccountStack], default: str) -> None:
        self._stacks = dict(stacks)
        self.default = self._stacks[default]

    def of(self, call: Call) -> AccountStack:
        """The stack of the call's account, which its authorisation set (a call that was not
        authorised has none, and fails here rather than reaching an account)."""
        return self._stacks[call.account]

    def __iter__(self) -> Iterator[AccountStack]:
        return iter(self._stacks.values())

    def __len__(self) -> int:
        return len(self._stacks)


async def one_account_windows_in_use(settings: Settings, shared: SharedRedis) -> list[str]:
    """The global limits whose windows, in the keys a one-account gateway uses, hold admissions now
    while no configured account uses those keys (none is named `default`).

    Replicas from before `[accounts]` (a rolling upgrade) or an account renamed away from `default`
    spend there a budget that none of this gateway's accounts counts. One EXISTS per limit, all in
    the `{prefix}` slot; [] when the accounts include `default` or Redis does not answer.
    """
    if not settings.raw_config.get("accounts") or DEFAULT_ACCOUNT in settings.toloka_accounts.accounts:
        return []
    limits = rate_limits_from(section(settings.raw_config, "rate_limits"), {})
    redis = await shared.ready()
    used = []
    for spec in limits.limits:
        if await redis.exists(limit_key(limits.key_prefix, spec, None)):
            used.append(spec.name)
    return used
