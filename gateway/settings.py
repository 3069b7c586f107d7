"""Typed settings, parsed once from flags, environment and an optional TOML config file.

Precedence: command-line flag > environment variable > config file > default. No other
module reads `os.environ`; `app.py` hands each layer its own settings group.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

EMULATOR = "emulator"
Unit = Literal["requests", "tasks"]

# Kinds of Toloka request, as the rate limiter sees them. A limit lists the kinds it counts;
# "*" counts every request (the account-wide limit).
KIND_CREATE_TASKS = "create_tasks"
KIND_GET_OPERATION = "get_operation"
KIND_GET_OPERATION_LOG = "get_operation_log"
KIND_GET_POOL = "get_pool"
KIND_UPDATE_POOL = "update_pool"
KIND_UPDATE_POOL_OVERLAP = "update_pool_overlap"
KIND_POOL_ACTION = "pool_action"
KIND_LIST_TASKS = "list_tasks"
ALL_KINDS = "*"

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SettingsError(ValueError):
    """A setting has a value the gateway cannot use; the message names it."""


def parse_duration(text: str | float | int, *, name: str) -> float:
    """Parse `1.5`, `500ms`, `30s`, `1m`, `1h`, `1d` into seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)?\s*", text)
    if not m:
        raise SettingsError(f"{name}: {text!r} is not a duration (examples: 500ms, 30s, 1m, 1h, 1d)")
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value / 1000 if unit == "ms" else value * _PERIODS[unit]


@dataclass(frozen=True)
class LimitSpec:
    """One limit: at most `capacity` units of the listed kinds in any sliding `period_s`."""

    name: str
    kinds: tuple[str, ...]
    capacity: int
    period_s: float
    unit: Unit = "requests"

    def applies_to(self, kind: str) -> bool:
        """True when a request of `kind` counts against this limit."""
        return ALL_KINDS in self.kinds or kind in self.kinds

    def cost(self, tasks: int) -> int:
        """What one request carrying `tasks` tasks costs against this limit."""
        return max(1, tasks) if self.unit == "tasks" else 1


@dataclass(frozen=True)
class RateLimitSettings:
    """Global limits, per-caller quotas, and how long a call may wait for capacity."""

    limits: tuple[LimitSpec, ...]
    caller_quotas: Mapping[str, tuple[LimitSpec, ...]] = field(default_factory=dict)
    default_caller_quota: tuple[LimitSpec, ...] = ()
    max_wait_s: float = 10.0
    degraded_share: float = 0.34
    key_prefix: str = "tgw"

    def quota_for(self, caller: str) -> tuple[LimitSpec, ...]:
        """The caller's own limits, or the default quota for callers not named."""
        return self.caller_quotas.get(caller, self.default_caller_quota)


@dataclass(frozen=True)
class DedupeSettings:
    """Operation-id dedupe: how long a claim is leased and how long outcomes are kept.

    The holder renews its lease every lease_s/3, so a short lease costs little and lets the
    duplicates of a holder that died (SIGKILL, node loss) proceed within about lease_s.
    """

    lease_s: float = 6.0
    retention_s: float = 86400.0
    # How long an unknown outcome (a synchronous create that may have happened) and the mark of one
    # in flight are kept; 0 keeps them until someone deletes them, since a person settles them.
    unknown_retention_s: float = 0.0
    max_stored_bytes: int = 4 * 1024 * 1024
    key_prefix: str = "tgw"


@dataclass(frozen=True)
class PollerSettings:
    """The shared operation poller's schedule, lease and cache."""

    initial_interval_s: float = 0.5
    max_interval_s: float = 4.0
    multiplier: float = 1.6
    jitter: float = 0.2
    lease_s: float = 5.0
    final_retention_s: float = 86400.0
    fresh_s: float = 0.5
    max_wait_s: float = 300.0
    key_prefix: str = "tgw"


@dataclass(frozen=True)
class TolokaSettings:
    """Where Toloka is and how to talk to it."""

    url: str = EMULATOR
    api_key: str = field(default="", repr=False)  # a secret: never in a repr, log or reply
    act_under_account_id: str = ""
    request_timeout_s: float = 30.0
    max_attempts: int = 5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    max_connections: int = 100
    # Process-wide retry budget (gRPC retry throttling's scheme): each retryable failure takes a
    # token, each success returns retry_budget_ratio; retries stop while half or fewer are left.
    retry_budget_tokens: float = 10.0
    retry_budget_ratio: float = 0.1

    @property
    def uses_emulator(self) -> bool:
        """True when the built-in emulator runs in-process."""
        return self.url == EMULATOR


@dataclass(frozen=True)
class ServerSettings:
    """The gRPC listener."""

    listen: str = "[::]:50051"
    max_message_bytes: int = 64 * 1024 * 1024
    grace_s: float = 20.0
    # After SIGTERM, health says NOT_SERVING for this long (calls still accepted) so balancers and
    # meshes stop routing here before the listener closes. It should outlast the health checker's
    # interval x failure threshold plus propagation: 5 s covers a 2 s x 2 prober; the Helm chart
    # derives it from the readiness probe (env GATEWAY_SHUTDOWN_DELAY, flag --shutdown-delay).
    shutdown_delay_s: float = 5.0
    caller_metadata_key: str = "x-caller-id"
    max_tasks_per_request: int = 10_000
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    # Shortest interval between a client's pings that the listener tolerates. gRPC's own default (5 min)
    # answers GOAWAY too_many_pings to clients and meshes that keep long calls alive with 10-30 s pings.
    min_ping_interval_s: float = 10.0
    # Memory that requests in flight may hold together, charged before decoding (see rpc/request_budget.py).
    max_inflight_request_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class ReworkSettings:
    """SetReworkRules: the per-pool write lock and the waits around a pool write."""

    lock_lease_s: float = 30.0
    lock_wait_s: float = 60.0
    operation_wait_s: float = 60.0
    reopen_grace_s: float = 30.0
    key_prefix: str = "tgw"


AuthMode = Literal["metadata", "token", "mtls"]
ALL = "*"


@dataclass(frozen=True)
class CallerPermissions:
    """What one caller may do: gRPC method names and Toloka pool ids ("*" = any)."""

    methods: frozenset[str] = frozenset({ALL})
    pools: frozenset[str] = frozenset({ALL})

    def allows_method(self, method: str) -> bool:
        """True when `method` (e.g. "SetReworkRules") is allowed."""
        return ALL in self.methods or method in self.methods

    def allows_pool(self, pool_id: str) -> bool:
        """True when `pool_id` is allowed."""
        return ALL in self.pools or pool_id in self.pools


@dataclass(frozen=True)
class AuthSettings:
    """Caller identity and permissions.

    `mode`: "metadata" (identity from the metadata key a mesh sets), "token" (a bearer token
    from `tokens_file`, TOML `caller = "token"` lines), or "mtls" (the client certificate's
    common name; the listener requires client certificates signed by `tls_client_ca_file`).
    Callers named in `callers` get those permissions; others get `default` or, with
    `require_known_callers`, are refused.
    """

    mode: AuthMode = "metadata"
    tokens_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    require_known_callers: bool = False
    callers: Mapping[str, CallerPermissions] = field(default_factory=dict)
    default: CallerPermissions = field(default_factory=CallerPermissions)

    def permissions_for(self, caller: str) -> CallerPermissions | None:
        """The caller's permissions, or None for an unknown caller when only known ones are admitted."""
        if caller in self.callers:
            return self.callers[caller]
        return None if self.require_known_callers else self.default


def _permissions(table: Any, where: str) -> CallerPermissions:
    if not isinstance(table, Mapping):
        raise SettingsError(f"config [{where}] must be a table with `methods` and `pools` lists")
    unknown = set(table) - {"methods", "pools"}
    if unknown:
        raise SettingsError(f"config [{where}]: unknown key(s) {sorted(unknown)}")
    return CallerPermissions(
        methods=frozenset(str(m) for m in table.get("methods", [ALL])),
        pools=frozenset(str(p) for p in table.get("pools", [ALL])),
    )


def _auth_from(table: Mapping[str, Any], env: Mapping[str, str]) -> AuthSettings:
    plain = {k: v for k, v in table.items() if k not in ("callers", "default")}
    auth: AuthSettings = _apply(AuthSettings(), plain, "auth")
    mode = env.get("GATEWAY_AUTH_MODE") or auth.mode
    if mode not in ("metadata", "token", "mtls"):
        raise SettingsError(f"auth.mode: {mode!r} is not one of metadata, token, mtls")
    callers_cfg = table.get("callers", {})
    if not isinstance(callers_cfg, Mapping):
        raise SettingsError("config [auth.callers] must be a table of caller -> {methods, pools}")
    auth = replace(
        auth,
        mode=cast(AuthMode, mode),
        tokens_file=env.get("GATEWAY_AUTH_TOKENS_FILE") or auth.tokens_file,
        callers={str(k): _permissions(v, f"auth.callers.{k}") for k, v in callers_cfg.items()},
        default=_permissions(table["default"], "auth.default") if "default" in table else CallerPermissions(),
    )
    if auth.mode == "token" and not auth.tokens_file:
        raise SettingsError("auth.mode = token needs auth.tokens_file (or GATEWAY_AUTH_TOKENS_FILE)")
    if auth.mode == "mtls" and not (auth.tls_cert_file and auth.tls_key_file and auth.tls_client_ca_file):
        raise SettingsError("auth.mode = mtls needs tls_cert_file, tls_key_file and tls_client_ca_file")
    return auth


@dataclass(frozen=True)
class ObservabilitySettings:
    """Metrics listener and logging."""

    metrics_listen: str = ""
    log_level: str = "INFO"


@dataclass(frozen=True)
class Settings:
    """Everything the gateway is configured with, in groups."""

    server: ServerSettings
    toloka: TolokaSettings
    redis_url: str = field(repr=False)  # may carry a password
    limits: RateLimitSettings
    dedupe: DedupeSettings
    poller: PollerSettings
    observability: ObservabilitySettings
    raw_config: Mapping[str, Any] = field(default_factory=dict)
    rework: ReworkSettings = field(default_factory=ReworkSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    redis_password: str = field(default="", repr=False)


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
        spec = LimitSpec(
            name=str(item["name"]),
            kinds=tuple(str(k) for k in ([kinds] if isinstance(kinds, str) else kinds)),
            capacity=int(item["capacity"]),
            period_s=parse_duration(item["period"], name=f"{where}.period"),
            unit=unit,
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


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not an integer") from None
    if value <= 0:
        raise SettingsError(f"{name}: must be positive")
    return value


def _read_api_key(env: Mapping[str, str]) -> str:
    if env.get("TOLOKA_API_KEY"):
        return env["TOLOKA_API_KEY"].strip()
    path = env.get("TOLOKA_API_KEY_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as e:
            raise SettingsError(f"TOLOKA_API_KEY_FILE: cannot read {path}: {e.strerror}") from None
    return ""


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = config.get(name, {})
    if not isinstance(value, Mapping):
        raise SettingsError(f"config [{name}] must be a table")
    return value


def _apply(group: Any, table: Mapping[str, Any], where: str) -> Any:
    """Override a frozen settings group's fields from a config table (durations accept units)."""
    known = {f for f in group.__dataclass_fields__}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise SettingsError(f"config [{where}]: unknown key {key!r}")
        current = getattr(group, key)
        if key.endswith("_s"):
            changes[key] = parse_duration(value, name=f"{where}.{key}")
        elif isinstance(current, bool):
            changes[key] = bool(value)
        elif isinstance(current, int):
            changes[key] = int(value)
        elif isinstance(current, float):
            changes[key] = float(value)
        else:
            changes[key] = value
    return replace(group, **changes)


def load(
    *,
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
    listen: str | None = None,
    toloka_url: str | None = None,
    redis_url: str | None = None,
    metrics_listen: str | None = None,
    shutdown_delay: str | None = None,
) -> Settings:
    """Build Settings from flags (the keyword arguments), environment and config file."""
    env = os.environ if env is None else env
    path = config_path or env.get("GATEWAY_CONFIG") or ""
    config: dict[str, Any] = {}
    if path:
        try:
            config = tomllib.loads(Path(path).read_text())
        except OSError as e:
            raise SettingsError(f"--config: cannot read {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"--config: {path} is not valid TOML: {e}") from None

    server = _apply(ServerSettings(), _section(config, "server"), "server")
    server = replace(server, listen=listen or env.get("GATEWAY_LISTEN") or server.listen)
    delay = shutdown_delay or env.get("GATEWAY_SHUTDOWN_DELAY")
    if delay:
        name = "--shutdown-delay" if shutdown_delay else "GATEWAY_SHUTDOWN_DELAY"
        server = replace(server, shutdown_delay_s=parse_duration(delay, name=name))
    if env.get("GATEWAY_CALLER_METADATA_KEY"):
        server = replace(server, caller_metadata_key=env["GATEWAY_CALLER_METADATA_KEY"].lower())

    toloka = _apply(TolokaSettings(), _section(config, "toloka"), "toloka")
    url = toloka_url or env.get("TOLOKA_URL") or toloka.url
    api_key = _read_api_key(env) or toloka.api_key
    if url == EMULATOR and api_key and not (toloka_url or env.get("TOLOKA_URL")):
        url = "https://toloka.dev"
    toloka = replace(toloka, url=url.rstrip("/"), api_key=api_key)
    if env.get("TOLOKA_ACT_UNDER_ACCOUNT_ID"):
        toloka = replace(toloka, act_under_account_id=env["TOLOKA_ACT_UNDER_ACCOUNT_ID"])

    limits_cfg = _section(config, "rate_limits")
    per_minute = _env_int(env, "GATEWAY_CREATE_TASKS_PER_MINUTE", 100_000)
    per_day = _env_int(env, "GATEWAY_CREATE_TASKS_PER_DAY", 2_000_000)
    limits = (
        _limits_from(limits_cfg["limits"], "rate_limits.limits")
        if "limits" in limits_cfg
        else default_limits(per_minute, per_day)
    )
    callers_cfg = limits_cfg.get("callers", {})
    if not isinstance(callers_cfg, Mapping):
        raise SettingsError("config [rate_limits.callers] must be a table of caller -> limits")
    caller_quotas = {
        str(name): _limits_from(items, f"rate_limits.callers.{name}") for name, items in callers_cfg.items()
    }
    default_quota = _limits_from(limits_cfg.get("default_caller", []), "rate_limits.default_caller")
    rate = RateLimitSettings(
        limits=limits,
        caller_quotas=caller_quotas,
        default_caller_quota=default_quota,
        max_wait_s=parse_duration(limits_cfg.get("max_wait", 10.0), name="rate_limits.max_wait"),
        degraded_share=float(limits_cfg.get("degraded_share", 0.34)),
    )
    if not 0 < rate.degraded_share <= 1:
        raise SettingsError("rate_limits.degraded_share must be in (0, 1]")

    observability = _apply(ObservabilitySettings(), _section(config, "observability"), "observability")
    observability = replace(
        observability,
        metrics_listen=metrics_listen or env.get("GATEWAY_METRICS_LISTEN") or observability.metrics_listen,
        log_level=(env.get("GATEWAY_LOG_LEVEL") or observability.log_level).upper(),
    )
    return Settings(
        server=server,
        toloka=toloka,
        redis_url=redis_url or env.get("REDIS_URL") or str(config.get("redis_url", "")),
        limits=rate,
        dedupe=_apply(DedupeSettings(), _section(config, "dedupe"), "dedupe"),
        poller=_apply(PollerSettings(), _section(config, "poller"), "poller"),
        observability=observability,
        raw_config=config,
        rework=_apply(ReworkSettings(), _section(config, "rework"), "rework"),
        auth=_auth_from(_section(config, "auth"), env),
        redis_password=env.get("REDIS_PASSWORD", ""),
    )
