"""The `[rls]` group: the Envoy rate-limit service on the gRPC port (domain, shadow limits, headers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.settings.parsing import SettingsError, apply_table
from gateway.settings.rate_limits import RateLimitSettings

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class RlsSettings:
    """`envoy.service.ratelimit.v3.RateLimitService`, answered from the gateway's own limits."""

    enabled: bool = True
    domain: str = "toloka"
    # Limit names (global, or in any caller's quota) the service decides in shadow mode: counted,
    # reported in metrics when they would refuse, never refusing.
    shadow_limits: tuple[str, ...] = ()
    # Add RateLimit-Limit / -Remaining / -Reset / -Policy (and Retry-After when over) to the answer,
    # for Envoy to put on the response it sends.
    response_headers: bool = False
    # The longest a decision waits for Redis before the degraded local share answers instead; well
    # under the HTTP rate-limit filter's default timeout (20 ms).
    redis_budget_s: float = 0.010


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE | _FALSE:
        return raw in _TRUE
    raise SettingsError(f"{name}: {raw!r} is not a boolean")


def rls_from(
    table: Mapping[str, Any], env: Mapping[str, str], limits: RateLimitSettings, *more: RateLimitSettings
) -> RlsSettings:
    """RlsSettings from `[rls]`, then GATEWAY_RLS_ENABLED and GATEWAY_RLS_DOMAIN; every shadow
    limit must name a limit configured in `limits` or `more` (each account's)."""
    rls = apply_table(RlsSettings(), table, "rls")
    shadow = rls.shadow_limits
    if isinstance(shadow, str) or not all(isinstance(name, str) for name in shadow):
        raise SettingsError("rls.shadow_limits: expected a list of limit names")
    known = {s.name for group in (limits, *more) for s in group.every_spec}
    unknown = sorted(set(shadow) - known)
    if unknown:
        raise SettingsError(f"rls.shadow_limits: no limit is named {', '.join(map(repr, unknown))}")
    rls = replace(
        rls,
        shadow_limits=tuple(shadow),
        enabled=_flag(env, "GATEWAY_RLS_ENABLED", rls.enabled),
        domain=env.get("GATEWAY_RLS_DOMAIN") or rls.domain,
    )
    if not rls.domain:
        raise SettingsError("rls.domain: must not be empty")
    if not 0 < rls.redis_budget_s < 1:
        raise SettingsError("rls.redis_budget_s: must be in (0, 1) seconds")
    return rls
