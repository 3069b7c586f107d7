"""`RateLimitServicer`: Envoy's ShouldRateLimit, decided at once from the gateway's own limits.

One call is one decision (`AdmissionLimiter.decide_hits`: every descriptor together, all or none,
one Redis round trip). It never waits for room: Envoy's filter times out after 20 ms by default.
While Redis is unreachable, or silent for longer than `[rls] redis_budget_s`, the degraded local
share decides, as for the gateway's own requests (it does not fail open).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from gateway.observability.metrics import GatewayMetrics
from gateway.ratelimit import AdmissionLimiter, Hit
from gateway.rls.answer import Status, response, statuses
from gateway.rls.descriptors import hits_for
from gateway.settings import RlsSettings

RLS_SERVICE_NAME: str = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name
NEAR_LIMIT = 0.8  # used / capacity from which an admission counts as near the limit
OTHER = "other"  # the metrics label of a kind no limit names, or of a domain not ours


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    """Answers ShouldRateLimit for `settings.domain` from `limiter`'s limits."""

    def __init__(
        self, *, limiter: AdmissionLimiter, settings: RlsSettings, metrics: GatewayMetrics | None = None
    ) -> None:
        self._limiter = limiter
        self._settings = settings
        self._metrics = metrics
        self._shadow = frozenset(settings.shadow_limits)
        limits = limiter.settings
        specs = [*limits.limits, *limits.default_caller_quota]
        specs += [s for quota in limits.caller_quotas.values() for s in quota]
        self._known_kinds = frozenset(k for s in specs for k in s.kinds)

    async def ShouldRateLimit(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        start = time.perf_counter()
        hits = hits_for(request, self._settings.domain)
        if not hits:  # another domain's request, or no descriptors: nothing of ours to decide
            found = [Status(over=False)] * len(request.descriptors)
            self._count(OTHER, [Hit(OTHER)] * len(found), found)
            return response(found, headers=False)
        decision = await self._limiter.decide_hits(
            hits, shadow=self._shadow, within_s=self._settings.redis_budget_s
        )
        per_hit = [self._limiter.planner.hit_charges(hit, self._shadow) for hit in hits]
        found = statuses(decision, per_hit)
        self._count(self._settings.domain, hits, found)
        # The gateway-wide counters (what is left, shadow refusals) take the first descriptor's kind.
        self._limiter.record(decision, self._kind_label(hits[0].kind))
        if self._metrics is not None:
            for ref in decision.shadow_refusals:
                self._metrics.rls_shadow_refusals.labels(self._settings.domain, ref.name).inc()
            self._metrics.rls_seconds.observe(time.perf_counter() - start)
        return response(found, headers=self._settings.response_headers)

    def _count(self, domain: str, hits: Sequence[Hit], found: Sequence[Status]) -> None:
        if self._metrics is None:
            return
        for hit, status in zip(hits, found, strict=True):
            kind = self._kind_label(hit.kind)
            near = (
                not status.over
                and status.charge is not None
                and status.remaining is not None
                and status.charge.capacity - status.remaining >= NEAR_LIMIT * status.charge.capacity
            )
            code = "OVER_LIMIT" if status.over else "OK"
            self._metrics.observe_rls(domain, kind, code, near_limit=near)

    def _kind_label(self, kind: str) -> str:
        return kind if kind in self._known_kinds else OTHER


def add_to_server(servicer: RateLimitServicer, server: grpc.aio.Server) -> None:
    """Serve `servicer` on `server` (beside TolokaGateway, outside its interceptor)."""
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(servicer, server)
