"""`RateLimitServicer`: Envoy's ShouldRateLimit, decided at once from the gateway's own limits.

Each descriptor is decided by its account's limiter (entry `account`, else the default account).
The descriptors of one account are one decision (`AdmissionLimiter.decide_hits`: all of them
together, all or none, one Redis round trip); a request naming several accounts makes one decision
per account, concurrently, since each account's limits live in its own key space. One account's
refusal does not undo another's admission: Envoy then refuses the request while the admitting
account has counted it, an over-count on the safe side. The answer keeps the descriptors' order.

A descriptor naming an account the gateway does not serve is answered OVER_LIMIT, and its request
is decided no further (no account is charged for a request Envoy will refuse): the other
descriptors are OK with their limit and no remaining, as in any refused request. Envoy's reference
service answers OK for a descriptor it has no configuration for, but here that would let a
mistyped or retired account name through uncounted, against limits that are the gateway's whole
promise; a refusal is loud (429s, `rls_decisions_total{kind="unknown_account"}`, one warning per
name) and fixed in the Envoy config. A request for another domain is still answered OK.

It never waits for room: Envoy's filter times out after 20 ms by default. While Redis is
unreachable, or silent for longer than `[rls] redis_budget_s`, the degraded local share decides, as
for the gateway's own requests (it does not fail open).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from gateway.observability.metrics import GatewayMetrics
from gateway.quota import configured_kinds
from gateway.ratelimit import AdmissionLimiter, Decision, Hit
from gateway.rls.answer import Status, response, statuses
from gateway.rls.descriptors import AccountHit, hits_for
from gateway.settings import RlsSettings

log = logging.getLogger(__name__)

RLS_SERVICE_NAME: str = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name
NEAR_LIMIT = 0.8  # used / capacity from which an admission counts as near the limit
OTHER = "other"  # the metrics label of a kind no limit names, or of a domain not ours
UNKNOWN_ACCOUNT = "unknown_account"  # the metrics kind label of a descriptor naming no served account
_WARNED_NAMES_MAX = 64  # unknown account names warned about, each once; past that, only counted


@dataclass(frozen=True)
class _Account:
    """One served account: its limiter and the kinds its limits name (the metrics' kind labels)."""

    name: str
    limiter: AdmissionLimiter
    known_kinds: frozenset[str]

    def kind_label(self, kind: str) -> str:
        return kind if kind in self.known_kinds else OTHER


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    """Answers ShouldRateLimit for `settings.domain`, each descriptor from its account's limiter."""

    def __init__(
        self,
        *,
        limiters: Mapping[str, AdmissionLimiter],
        default_account: str,
        settings: RlsSettings,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        """`limiters`: one per served account, by name; `default_account` decides descriptors
        without an `account` entry."""
        if default_account not in limiters:
            raise ValueError(f"the default account {default_account!r} is not among the limiters")
        self._accounts = {
            name: _Account(name, lim, configured_kinds(lim.settings)) for name, lim in limiters.items()
        }
        self._default = self._accounts[default_account]
        self._settings = settings
        self._metrics = metrics
        self._shadow = frozenset(settings.shadow_limits)
        self._warned: set[str] = set()

    async def ShouldRateLimit(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        start = time.perf_counter()
        described = hits_for(request, self._settings.domain)
        if not described:  # another domain's request, or no descriptors: nothing of ours to decide
            found = [Status(over=False)] * len(request.descriptors)
            self._count(OTHER, [OTHER] * len(found), found)
            return response(found, headers=False)
        accounts = [self._account_of(d) for d in described]
        if None in accounts:
            found = self._refuse_unknown(described, accounts)
        else:
            found = await self._decide(described, [a for a in accounts if a is not None])
        labels = [
            UNKNOWN_ACCOUNT if a is None else a.kind_label(d.hit.kind)
            for d, a in zip(described, accounts, strict=True)
        ]
        self._count(self._settings.domain, labels, found)
        if self._metrics is not None:
            self._metrics.rls_seconds.observe(time.perf_counter() - start)
        return response(found, headers=self._settings.response_headers)

    def _account_of(self, described: AccountHit) -> _Account | None:
        if described.account is None:
            return self._default
        return self._accounts.get(described.account)

    async def _decide(self, described: Sequence[AccountHit], accounts: Sequence[_Account]) -> list[Status]:
        """One decision per account over its descriptors; the statuses in descriptor order."""
        groups: dict[str, list[int]] = {}
        for i, account in enumerate(accounts):
            groups.setdefault(account.name, []).append(i)
        hits = [d.hit for d in described]
        if len(groups) == 1:  # the common case: no task to schedule
            return await self._decide_one(accounts[0], hits)
        decided = await asyncio.gather(
            *(self._decide_one(self._accounts[name], [hits[i] for i in at]) for name, at in groups.items())
        )
        found: list[Status] = [Status(over=False)] * len(hits)
        for at, group_found in zip(groups.values(), decided, strict=True):
            for i, status in zip(at, group_found, strict=True):
                found[i] = status
        return found

    async def _decide_one(self, account: _Account, hits: Sequence[Hit]) -> list[Status]:
        limiter = account.limiter
        decision = await limiter.decide_hits(
            hits, shadow=self._shadow, within_s=self._settings.redis_budget_s
        )
        per_hit = [limiter.planner.hit_charges(hit, self._shadow) for hit in hits]
        # The gateway-wide counters (what is left, shadow refusals) take the first descriptor's kind.
        limiter.record(decision, account.kind_label(hits[0].kind))
        self._count_shadow(decision)
        return statuses(decision, per_hit)

    def _refuse_unknown(
        self, described: Sequence[AccountHit], accounts: Sequence[_Account | None]
    ) -> list[Status]:
        """OVER_LIMIT for each descriptor naming no served account; the others are not decided (the
        request is refused, so nothing is charged) and answered OK with their first enforced limit."""
        found: list[Status] = []
        for d, account in zip(described, accounts, strict=True):
            if account is None:
                self._warn_unknown(d.account or "")
                found.append(Status(over=True))
                continue
            charges = account.limiter.planner.hit_charges(d.hit, self._shadow)
            enforced = next((c for c in charges if not c.shadow), None)
            found.append(Status(over=False, charge=enforced))
        return found

    def _warn_unknown(self, name: str) -> None:
        name = name[:64]  # Envoy sends whatever the header held
        if name in self._warned or len(self._warned) >= _WARNED_NAMES_MAX:
            return
        self._warned.add(name)
        log.warning(
            "rate-limit service: a descriptor names account %r, which this gateway does not serve "
            "(it serves %s); its requests are answered OVER_LIMIT",
            name,
            ", ".join(sorted(self._accounts)),
        )

    def _count_shadow(self, decision: Decision) -> None:
        if self._metrics is None:
            return
        for ref in decision.shadow_refusals:
            self._metrics.rls_shadow_refusals.labels(self._settings.domain, ref.name).inc()

    def _count(self, domain: str, kinds: Sequence[str], found: Sequence[Status]) -> None:
        if self._metrics is None:
            return
        for kind, status in zip(kinds, found, strict=True):
            near = (
                not status.over
                and status.charge is not None
                and status.remaining is not None
                and status.charge.capacity - status.remaining >= NEAR_LIMIT * status.charge.capacity
            )
            code = "OVER_LIMIT" if status.over else "OK"
            self._metrics.observe_rls(domain, kind, code, near_limit=near)


def add_to_server(servicer: RateLimitServicer, server: grpc.aio.Server) -> None:
    """Serve `servicer` on `server` (beside TolokaGateway, outside its interceptor)."""
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(servicer, server)
