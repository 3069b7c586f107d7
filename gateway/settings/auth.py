"""The `[auth]` group: caller identity (`GATEWAY_AUTH_MODE`, `GATEWAY_AUTH_TOKENS_FILE`) and permissions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Literal, cast

from gateway.settings.parsing import SettingsError, apply_table

AuthMode = Literal["metadata", "token", "mtls"]
ALL = "*"


@dataclass(frozen=True)
class CallerPermissions:
    """What one caller may do: gRPC method names, REST requests and Toloka pool ids ("*" = any).

    A `rest` entry is an HTTP method ("GET": read-only), or a method and a path pattern
    ("POST /api/v1/pools/*/open"; `*` matches within and across path segments), or "*". Without
    `rest` (None), a caller allowed every gRPC method may send every REST request, others none.
    """

    methods: frozenset[str] = frozenset({ALL})
    pools: frozenset[str] = frozenset({ALL})
    rest: frozenset[str] | None = None
    # The Toloka accounts the caller may use, its default first; None: the gateway's default account.
    accounts: tuple[str, ...] | None = None
    # What the caller may do in one of its accounts, when that differs (`[...per_account.<name>]`):
    # pool ids are an account's own, so a caller's pools in one account mean nothing in another.
    per_account: Mapping[str, CallerPermissions] = field(default_factory=dict)

    def in_account(self, account: str) -> CallerPermissions:
        """The caller's permissions in `account`: its `per_account` table's, else its own."""
        return self.per_account.get(account, self)

    def allows_method(self, method: str) -> bool:
        """True when `method` (e.g. "SetReworkRules") is allowed."""
        return ALL in self.methods or method in self.methods

    def allows_rest(self, method: str, path: str) -> bool:
        """True when the REST request `method path` (path without query) is allowed."""
        if self.rest is None:  # no REST rules: only a caller allowed every method may use REST
            return ALL in self.methods
        if ALL in self.rest:
            return True
        method = method.upper()
        request = f"{method} {path}"
        return any(rule == method or fnmatchcase(request, rule) for rule in self.rest)

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


_RIGHTS = ("methods", "pools", "rest")


def _permissions(table: Any, where: str) -> CallerPermissions:
    if not isinstance(table, Mapping):
        raise SettingsError(f"config [{where}] must be a table with `methods` and `pools` lists")
    unknown = set(table) - {*_RIGHTS, "accounts", "per_account"}
    if unknown:
        raise SettingsError(f"config [{where}]: unknown key(s) {sorted(unknown)}")
    perms = replace(_rights(CallerPermissions(), table), accounts=_accounts(table.get("accounts"), where))
    per_account = table.get("per_account", {})
    if not isinstance(per_account, Mapping):
        raise SettingsError(
            f"config [{where}.per_account] must be a table of account -> {{methods, pools, rest}}"
        )
    overrides: dict[str, CallerPermissions] = {}
    for account, rights in per_account.items():
        inner = f"{where}.per_account.{account}"
        if not isinstance(rights, Mapping) or set(rights) - set(_RIGHTS):
            raise SettingsError(f"config [{inner}] must be a table of {', '.join(_RIGHTS)}")
        if perms.accounts is not None and account not in perms.accounts:
            raise SettingsError(
                f"config [{inner}]: {account!r} is not one of the caller's accounts ({', '.join(perms.accounts)})"
            )
        overrides[str(account)] = replace(_rights(perms, rights), per_account={})
    return replace(perms, per_account=overrides)


def _rights(base: CallerPermissions, table: Mapping[str, Any]) -> CallerPermissions:
    """`base` with the methods, pools and rest rules `table` gives (the others kept)."""
    rest = table.get("rest", base.rest)
    return replace(
        base,
        methods=frozenset(str(m) for m in table["methods"]) if "methods" in table else base.methods,
        pools=frozenset(str(p) for p in table["pools"]) if "pools" in table else base.pools,
        rest=None if rest is None else frozenset(str(r).strip() for r in rest),
    )


def _accounts(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a for a in value):
        raise SettingsError(f"config [{where}].accounts must be a non-empty list of account names")
    return tuple(dict.fromkeys(value))


def auth_from(table: Mapping[str, Any], env: Mapping[str, str]) -> AuthSettings:
    """AuthSettings from the `[auth]` table, then env vars; checks each mode has the files it needs."""
    plain = {k: v for k, v in table.items() if k not in ("callers", "default")}
    auth = apply_table(AuthSettings(), plain, "auth")
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
