"""The `[rate_limits]` group: global limits, per-caller quotas, the wait for capacity, degraded share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.limit_spec import LimitSpec
from gateway.request_kinds import ALL_KINDS, KIND_CREATE_TASKS, KIND_UPDATE_POOL_OVERLAP
from gateway.settings.parsing import SettingsError, env_int, parse_duration


@dataclass(frozen=True)
class RateLimitSettings:
    """Global limits, per-caller quotas, and how long a call may wait for capacity."""

    limits: tuple[LimitSpec, ...]
    caller_quotas: Mapping[str, tuple[LimitSpec, ...]] = field(default_factory=dict)
    default_caller_quota: tuple[LimitSpec, ...] = ()
    max_wait_s: float = 10.0
    degraded_share: float = 0.34
    key_prefix: str = "tgw"

    @property
    def every_spec(self) -> tuple[LimitSpec, ...]:
        """Every limit the group configures: the global ones, the default quota, each caller's quota."""
        quotas = (s for quota in self.caller_quotas.values() for s in quota)
        return (*self.limits, *self.default_caller_quota, *quotas)

    def quota_for(self, caller: str) -> tuple[LimitSpec, ...]:
        """The caller's own limits, or the default quota for callers not named."""
        return self.caller_quotas.get(caller, self.default_caller_quota)


def default_limits(per_minute: int = 100_000, per_day: int = 2_000_000) -> tuple[LimitSpec, ...]:
    """Toloka's published limits, as the SDK documents them."""
    return (
        # Counted in tasks: Toloka's newer pages count tasks, and in requests 100,000 a minute could
        # never bind (the 300 requests/s account limit allows 18,000). Tasks is the safe reading.
        LimitSpec("create_tasks_per_minute", (KIND_CREATE_TASKS,), per_minute, 60.0, "tasks"),
        LimitSpec("create_tasks_per_day", (KIND_CREATE_TASKS,), per_day, 86400.0, "tasks"),
        LimitSpec("account_per_second", (ALL_KINDS,), 300, 1.0),
        LimitSpec("overlap_changes_per_hour", (KIND_UPDATE_POOL_OVERLAP,), 10, 3600.0),
    )


def _limit_from(item: Mapping[str, Any], where: str) -> LimitSpec:
    try:
        kinds = item.get("kinds", [ALL_KINDS])
        unit = item.get("unit", "requests")
        if unit not in ("requests", "tasks"):
            raise SettingsError(f"{where}.unit: {unit!r} is not 'requests' or 'tasks'")
        shadow = item.get("shadow", False)
        if not isinstance(shadow, bool):
            raise SettingsError(f"{where}.shadow: {shadow!r} is not true or false")
        spec = LimitSpec(
            name=str(item["name"]),
            kinds=tuple(str(k) for k in ([kinds] if isinstance(kinds, str) else kinds)),
            capacity=int(item["capacity"]),
            period_s=parse_duration(item["period"], name=f"{where}.period"),
            unit=unit,
            shadow=shadow,
        )
    except KeyError as e:
        raise SettingsError(f"{where}: missing key {e.args[0]!r}") from None
    if spec.capacity <= 0 or spec.period_s <= 0:
        raise SettingsError(f"{where}: capacity and period must be positive")
    return spec


def _limits_from(items: Any, where: str) -> tuple[LimitSpec, ...]:
    if not isinstance(items, list):
        raise SettingsError(f"{where}: expected a list of limits")
    return tuple(_limit_from(item, f"{where}[{i}]") for i, item in enumerate(items))


def rate_limits_from(table: Mapping[str, Any], env: Mapping[str, str]) -> RateLimitSettings:
    """RateLimitSettings from `[rate_limits]`; the create-tasks env vars count only without `limits`."""
    per_minute = env_int(env, "GATEWAY_CREATE_TASKS_PER_MINUTE", 100_000)
    per_day = env_int(env, "GATEWAY_CREATE_TASKS_PER_DAY", 2_000_000)
    limits = (
        _limits_from(table["limits"], "rate_limits.limits")
        if "limits" in table
        else default_limits(per_minute, per_day)
    )
    callers_cfg = table.get("callers", {})
    if not isinstance(callers_cfg, Mapping):
        raise SettingsError("config [rate_limits.callers] must be a table of caller -> limits")
    caller_quotas = {
        str(name): _limits_from(items, f"rate_limits.callers.{name}") for name, items in callers_cfg.items()
    }
    default_quota = _limits_from(table.get("default_caller", []), "rate_limits.default_caller")
    rate = RateLimitSettings(
        limits=limits,
        caller_quotas=caller_quotas,
        default_caller_quota=default_quota,
        max_wait_s=parse_duration(table.get("max_wait", 10.0), name="rate_limits.max_wait"),
        degraded_share=float(table.get("degraded_share", 0.34)),
    )
    if not 0 < rate.degraded_share <= 1:
        raise SettingsError("rate_limits.degraded_share must be in (0, 1]")
    return rate
