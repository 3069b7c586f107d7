"""From one Decision to Envoy's answer: one DescriptorStatus per descriptor, and RateLimit-* headers.

Per descriptor (each reaches several limits: the global ones for its kind, its caller's quota):

- admitted: OK, reporting the limit with the least left: `current_limit`, `limit_remaining`, and
  `duration_until_reset` = the time until that limit's sliding window frees its next unit (not a
  calendar boundary: there is none).
- refused by one of its limits: OVER_LIMIT, reporting the refusing limit with the longest wait
  (`limit_remaining` 0, `duration_until_reset` = when the cost fits again; the whole period for a
  cost that can never fit). A Toloka cool-down refuses every descriptor, its end as the reset.
- in a refused request but not refused itself: OK with its limit and no remaining (all or none:
  nothing was debited, so there is no count to report).
- no enforced limit reaches it (none configured, or only shadow ones): OK without a limit.

Headers (IETF draft "RateLimit header fields", when `[rls] response_headers` asks for them)
describe the status that decided: the longest-waiting refusal, else the tightest limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf import duration_pb2

from gateway.ratelimit import Decision, LimitRef, Refusal
from gateway.ratelimit.decision import Charge

Response = rls_pb2.RateLimitResponse
OK = Response.OK
OVER_LIMIT = Response.OVER_LIMIT
_UNITS = {
    1.0: Response.RateLimit.SECOND,
    60.0: Response.RateLimit.MINUTE,
    3600.0: Response.RateLimit.HOUR,
    86400.0: Response.RateLimit.DAY,
    604800.0: Response.RateLimit.WEEK,
}
_UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class Status:
    """One descriptor's answer before it becomes a proto."""

    over: bool
    charge: Charge | None = None  # the limit reported (None: no enforced limit reaches it)
    remaining: int | None = None
    reset_s: float | None = None


def statuses(decision: Decision, per_hit: Sequence[tuple[Charge, ...]]) -> list[Status]:
    """The status of each descriptor, from the decision over all of them and each one's charges."""
    if decision.admitted:
        left = dict(decision.remaining)
        frees = dict(zip((ref for ref, _ in decision.remaining), decision.frees_in, strict=False))
        return [_admitted(charges, left, frees) for charges in per_hit]
    cooldown = next((r for r in decision.refusals if r.limit is None), None)
    refusals = {r.limit: r for r in decision.refusals if r.limit is not None}
    return [_refused(charges, refusals, cooldown) for charges in per_hit]


def _admitted(charges: tuple[Charge, ...], left: dict[LimitRef, int], frees: dict[LimitRef, float]) -> Status:
    enforced = [c for c in charges if not c.shadow]
    if not enforced:
        return Status(over=False)
    tightest = min(enforced, key=lambda c: left[c.ref])
    return Status(False, tightest, left[tightest.ref], frees.get(tightest.ref))


def _refused(
    charges: tuple[Charge, ...], refusals: dict[LimitRef, Refusal], cooldown: Refusal | None
) -> Status:
    enforced = [c for c in charges if not c.shadow]
    first = enforced[0] if enforced else None
    if cooldown is not None:
        return Status(True, first, 0, cooldown.retry_after)
    refusing = [c for c in enforced if c.ref in refusals]
    if not refusing:
        return Status(False, first)

    def wait(charge: Charge) -> float:
        after = refusals[charge.ref].retry_after
        return math.inf if after is None else after

    longest = max(refusing, key=wait)
    reset = wait(longest)
    return Status(True, longest, 0, longest.spec.period_s if math.isinf(reset) else reset)


def response(found: Sequence[Status], *, headers: bool) -> Any:
    """The RateLimitResponse: OVER_LIMIT when any descriptor is, one status per descriptor."""
    over = any(s.over for s in found)
    reply = Response(overall_code=OVER_LIMIT if over else OK)
    for status in found:
        reply.statuses.append(_descriptor_status(status))
    deciding = _deciding(found)
    if headers and deciding is not None:
        reply.response_headers_to_add.extend(
            base_pb2.HeaderValue(key=key, value=value) for key, value in rate_limit_headers(deciding)
        )
    return reply


def _descriptor_status(status: Status) -> Any:
    out = Response.DescriptorStatus(code=OVER_LIMIT if status.over else OK)
    if status.charge is not None:
        spec = status.charge.spec
        out.current_limit.name = status.charge.ref.subject
        out.current_limit.requests_per_unit = min(spec.capacity, _UINT32_MAX)
        out.current_limit.unit = _UNITS.get(spec.period_s, Response.RateLimit.UNKNOWN)
    if status.remaining is not None:
        out.limit_remaining = min(max(0, status.remaining), _UINT32_MAX)
    if status.reset_s is not None:
        out.duration_until_reset.CopyFrom(_duration(status.reset_s))
    return out


def _deciding(found: Sequence[Status]) -> Status | None:
    described = [s for s in found if s.charge is not None and s.remaining is not None]
    over = [s for s in described if s.over]
    if over:
        return max(over, key=lambda s: s.reset_s or 0.0)
    return min(described, key=lambda s: s.remaining or 0, default=None)


def rate_limit_headers(status: Status) -> list[tuple[str, str]]:
    """RateLimit-Limit / -Remaining / -Reset / -Policy, and Retry-After when over (delta-seconds,
    rounded up so a client that waits that long finds room)."""
    if status.charge is None:
        return []
    spec = status.charge.spec
    reset = math.ceil(status.reset_s or 0.0)
    found = [
        ("ratelimit-limit", str(spec.capacity)),
        ("ratelimit-remaining", str(max(0, status.remaining or 0))),
        ("ratelimit-reset", str(reset)),
        ("ratelimit-policy", f"{spec.capacity};w={spec.period_s:g}"),
    ]
    if status.over:
        found.append(("retry-after", str(reset)))
    return found


def _duration(seconds: float) -> duration_pb2.Duration:
    whole, nanos = divmod(max(0, round(seconds * 1e9)), 1_000_000_000)
    return duration_pb2.Duration(seconds=whole, nanos=nanos)
