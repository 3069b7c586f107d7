"""GetQuota: every limit that applies to the calling caller, as of now. It spends nothing.

One read of the shared counters (`AdmissionLimiter.peek`: one Redis round trip, or the local
windows), answered as the gRPC message (`get_quota`) or as JSON for the REST front (`as_json`).
"""

from __future__ import annotations

from typing import Any, Protocol

from google.protobuf import duration_pb2

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.ratelimit import LimitState, QuotaSnapshot
from gateway.request_kinds import ALL_KINDS, REQUEST_KINDS
from gateway.settings import RateLimitSettings

_UNITS = {"requests": pb.LIMIT_UNIT_REQUESTS, "tasks": pb.LIMIT_UNIT_TASKS}
MAX_ECHOED = 64  # of an unknown kind, echoed in the error


def configured_kinds(settings: RateLimitSettings) -> frozenset[str]:
    """Every kind a configured limit names (global, default quota, or a caller's quota)."""
    return frozenset(k for s in settings.every_spec for k in s.kinds)


class QuotaReader(Protocol):
    """Reads the limits that apply to a caller without spending anything (`AdmissionLimiter`)."""

    async def peek(self, *, caller: str, kind: str | None = None) -> QuotaSnapshot:
        """Every limit of `caller` (or those that count `kind`) as of now."""
        ...


class QuotaService:
    """GetQuota and its REST twin."""

    def __init__(
        self, *, limiter: QuotaReader, configured_kinds: frozenset[str] = frozenset(), account: str = ""
    ) -> None:
        self._limiter = limiter
        self.account = account  # the Toloka account whose limits these are
        # A kind a limit names in the config counts too, even one the gateway never sends itself.
        self._kinds = (REQUEST_KINDS | configured_kinds) - {ALL_KINDS}

    async def get_quota(self, request: pb.GetQuotaRequest, call: Call) -> pb.GetQuotaResponse:
        """The gRPC answer for the calling caller."""
        snapshot = await self.read(request.kind, call)
        return pb.GetQuotaResponse(
            limits=[_limit_proto(state) for state in snapshot.limits],
            degraded=snapshot.degraded,
            toloka_cooldown=_duration(snapshot.cooldown),
            account=self.account,
        )

    async def read(self, kind: str, call: Call) -> QuotaSnapshot:
        """The limits of `call.caller`, narrowed to `kind` unless it is empty; InvalidArgument for
        a kind that is not a request kind."""
        if kind and kind not in self._kinds:
            shown = kind[:MAX_ECHOED]
            raise errors.InvalidArgument(
                f"kind {shown!r} is not a request kind",
                reason="UNKNOWN_KIND",
                violations=[
                    errors.FieldViolation(
                        "kind",
                        f"not a request kind; one of: {', '.join(sorted(self._kinds))}",
                        "UNKNOWN_KIND",
                    )
                ],
            )
        return await self._limiter.peek(caller=call.caller, kind=kind or None)


def as_json(snapshot: QuotaSnapshot, account: str = "") -> dict[str, Any]:
    """The REST answer: the gRPC message's fields, durations in seconds (`period_s`, `next_unit_in_s`,
    `toloka_cooldown_s`)."""
    return {
        "account": account,
        "limits": [
            {
                "name": s.charge.spec.name,
                "caller": s.charge.ref.caller or "",
                "kinds": list(s.charge.spec.kinds),
                "unit": s.charge.spec.unit,
                "capacity": s.charge.spec.capacity,
                "period_s": s.charge.spec.period_s,
                "remaining": s.remaining,
                "next_unit_in_s": round(s.next_unit_in, 6),
                "shadow": s.charge.shadow,
            }
            for s in snapshot.limits
        ],
        "degraded": snapshot.degraded,
        "toloka_cooldown_s": round(snapshot.cooldown, 6),
    }


def _limit_proto(state: LimitState) -> pb.LimitQuota:
    spec = state.charge.spec
    return pb.LimitQuota(
        name=spec.name,
        caller=state.charge.ref.caller or "",
        kinds=spec.kinds,
        unit=_UNITS[spec.unit],
        capacity=spec.capacity,
        period=_duration(spec.period_s),
        remaining=state.remaining,
        next_unit_in=_duration(state.next_unit_in),
        shadow=state.charge.shadow,
    )


def _duration(seconds: float) -> duration_pb2.Duration:
    whole, nanos = divmod(max(0, round(seconds * 1e9)), 1_000_000_000)
    return duration_pb2.Duration(seconds=whole, nanos=nanos)
