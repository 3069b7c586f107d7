"""From a ShouldRateLimit request to the hits of its decisions: Envoy's descriptors, our request kinds
and accounts.

Mapping, per descriptor of the configured domain:

- entry `kind`: the request kind (the kinds the account's `[rate_limits]` limits count). A kind no
  limit names counts against the account-wide limits (kinds = "*") only; so does a descriptor
  without `kind`.
- entry `caller`: optional; that caller's quota applies too (its own, or the default quota).
- entry `account`: optional; the Toloka account (`[accounts.<name>]`) whose limits decide the
  descriptor. Without it (or empty), the gateway's default account. An account the gateway does not
  serve is refused (OVER_LIMIT), never let through uncounted: see `servicer`.
- any other entry is ignored (the descriptor is still decided by its kind, caller and account); of
  repeated keys the first counts.
- cost: the descriptor's `hits_addend` when set, else the request's, else 1 (0 reads as 1, as in
  Envoy); it is the task count, so a task-counted limit is spent in tasks and a request-counted
  one by 1 per descriptor.
- the descriptor's `limit` override is ignored: the gateway's configuration is the one source.

A request for another domain is none of ours: `hits_for` answers None and the servicer says OK
without a decision, as Envoy's reference service does for a domain it has no configuration for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.ratelimit import Hit

KIND_KEY = "kind"
CALLER_KEY = "caller"
ACCOUNT_KEY = "account"
UNKNOWN_KIND = ""  # no limit names it: only the account-wide limits count it
# A cost above this is refused as "never fits" anyway; the cap keeps Redis's numbers exact.
MAX_COST = 2**31 - 1


@dataclass(frozen=True, slots=True)
class AccountHit:
    """One descriptor: the hit its account's limiter decides, and that account (None: the default)."""

    hit: Hit
    account: str | None = None


def hits_for(request: Any, domain: str) -> list[AccountHit] | None:
    """One hit per descriptor, in order; None when the request's domain is not `domain`."""
    if request.domain != domain:
        return None
    default_cost = request.hits_addend or 1
    return [_hit(descriptor, default_cost) for descriptor in request.descriptors]


def _hit(descriptor: Any, default_cost: int) -> AccountHit:
    kind: str | None = None
    caller: str | None = None
    account: str | None = None
    for entry in descriptor.entries:
        if entry.key == KIND_KEY and kind is None:
            kind = entry.value
        elif entry.key == CALLER_KEY and caller is None:
            caller = entry.value
        elif entry.key == ACCOUNT_KEY and account is None:
            account = entry.value
    cost = default_cost
    if descriptor.HasField("hits_addend"):
        cost = descriptor.hits_addend.value or 1
    hit = Hit(kind=kind or UNKNOWN_KIND, tasks=min(cost, MAX_COST), caller=caller or None)
    return AccountHit(hit, account or None)
