"""`Settings`, every group together, and `load`, which runs each group's parser in turn."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.settings.accounts import AccountSettings, accounts_from, single_account
from gateway.settings.auth import AuthSettings, auth_from
from gateway.settings.config_only import DedupeSettings, PollerSettings, ReworkSettings
from gateway.settings.observability import ObservabilitySettings, observability_from
from gateway.settings.parsing import SettingsError, apply_table, read_config, section
from gateway.settings.rate_limits import RateLimitSettings, rate_limits_from
from gateway.settings.rest import RestSettings, rest_from
from gateway.settings.rls import RlsSettings, rls_from
from gateway.settings.server import ServerSettings, server_from
from gateway.settings.toloka import TolokaSettings, toloka_from


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
    rest: RestSettings = field(default_factory=RestSettings)
    rls: RlsSettings = field(default_factory=RlsSettings)
    # Every Toloka account (`toloka_accounts`); None: `toloka` and `limits` as the account "default".
    accounts: AccountSettings | None = None

    @property
    def toloka_accounts(self) -> AccountSettings:
        """Every Toloka account the gateway serves (one, `default`, unless `[accounts]` names more)."""
        return self.accounts or single_account(
            self.toloka, self.limits, dedupe=self.dedupe, poller=self.poller, rework=self.rework
        )


def load(
    *,
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
    listen: str | None = None,
    toloka_url: str | None = None,
    redis_url: str | None = None,
    metrics_listen: str | None = None,
    shutdown_delay: str | None = None,
    rest_listen: str | None = None,
) -> Settings:
    """Build Settings from flags (the keyword arguments), environment and config file."""
    env = os.environ if env is None else env
    config = read_config(config_path or env.get("GATEWAY_CONFIG") or "")
    # The groups are parsed in this order so that, of several bad values, the same one is reported.
    server = server_from(section(config, "server"), env, listen=listen, shutdown_delay=shutdown_delay)
    toloka = toloka_from(section(config, "toloka"), env, toloka_url=toloka_url)
    rate = rate_limits_from(section(config, "rate_limits"), env)
    observability = observability_from(section(config, "observability"), env, metrics_listen=metrics_listen)
    accounts = accounts_from(config, env, toloka=toloka, limits=rate).with_key_spaces(
        dedupe=apply_table(DedupeSettings(), section(config, "dedupe"), "dedupe"),
        poller=apply_table(PollerSettings(), section(config, "poller"), "poller"),
        rework=apply_table(ReworkSettings(), section(config, "rework"), "rework"),
    )
    auth = auth_from(section(config, "auth"), env)
    _check_caller_accounts(auth, accounts)
    default = accounts.default_account  # the groups of one account's settings are the default's
    return Settings(
        server=server,
        toloka=default.toloka,
        redis_url=redis_url or env.get("REDIS_URL") or str(config.get("redis_url", "")),
        limits=default.limits,
        dedupe=default.dedupe,
        poller=default.poller,
        observability=observability,
        raw_config=config,
        rework=default.rework,
        auth=auth,
        redis_password=env.get("REDIS_PASSWORD", ""),
        rest=rest_from(section(config, "rest"), env, listen=rest_listen),
        rls=rls_from(section(config, "rls"), env, rate, *(a.limits for a in accounts.accounts.values())),
        accounts=accounts,
    )


def _check_caller_accounts(auth: AuthSettings, accounts: AccountSettings) -> None:
    """SettingsError naming the caller and the account when a caller is given an account that does not
    exist, or permissions in an account it may not use."""
    named = [("auth.default", auth.default)] + [(f"auth.callers.{c}", p) for c, p in auth.callers.items()]
    for where, perms in named:
        for account in perms.accounts or ():
            if accounts.get(account) is None:
                raise SettingsError(
                    f"config [{where}].accounts: no account {account!r} "
                    f"(accounts: {', '.join(sorted(accounts.accounts))})"
                )
        usable = perms.accounts or (accounts.default,)
        for account in perms.per_account:
            if account not in usable:
                raise SettingsError(
                    f"config [{where}.per_account.{account}]: the caller may not use account {account!r} "
                    f"(its accounts: {', '.join(usable)})"
                )
