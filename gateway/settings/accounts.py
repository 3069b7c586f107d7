"""The `[accounts]` group: several Toloka accounts behind one gateway, each with its own key, limits
and Redis key space.

    [accounts.production]
    url = "https://toloka.dev"
    api_key_env = "TOLOKA_PROD_API_KEY"        # or: api_key_file = "/run/secrets/toloka-prod"
    act_under_account_id = "..."               # optional
    [accounts.production.rate_limits]          # optional; the shape of [rate_limits]
    limits = [{ name = "account_per_second", kinds = ["*"], capacity = 300, period = "1s" }]

    [accounts.sandbox]
    url = "https://sandbox.toloka.dev"
    api_key_file = "/run/secrets/toloka-sandbox"

An account's key comes from an environment variable or a file, never from the config text. Other
`[toloka]` options (timeouts, retries, connections) are shared defaults an account table may override.
An account without its own `rate_limits` table gets the `[rate_limits]` group's (by default Toloka's
published limits), counted in its own key space.

The default account (the one calls go to when they name none and their caller lists no accounts) is
the top-level `default_account`, else the one named `default`, else the first declared. Without `[accounts]`, today's
single configuration (`[toloka]`, `TOLOKA_*`, `[rate_limits]`) is the account `default`, with the Redis
keys it has always used; every other account's keys live under their own prefix, so two accounts
never share an operation id, a lease or a limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gateway.settings.config_only import DedupeSettings, PollerSettings, ReworkSettings
from gateway.settings.parsing import SettingsError, apply_table, section
from gateway.settings.rate_limits import RateLimitSettings, rate_limits_from
from gateway.settings.toloka import EMULATOR, TolokaSettings

DEFAULT_ACCOUNT = "default"
ACCOUNT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_KEY_SOURCES = ("api_key_env", "api_key_file")
_TOLOKA_OPTIONS = frozenset(f.name for f in fields(TolokaSettings)) - {"api_key"}


@dataclass(frozen=True)
class Account:
    """One Toloka account: where it is, its key (in `toloka.api_key`), its limits and its key space.

    Every group with Redis keys (limits, dedupe, poller, rework) has its key_prefix already scoped
    (`scoped`): an account's layers never read or write another account's keys.
    """

    name: str
    toloka: TolokaSettings
    limits: RateLimitSettings
    dedupe: DedupeSettings = field(default_factory=DedupeSettings)
    poller: PollerSettings = field(default_factory=PollerSettings)
    rework: ReworkSettings = field(default_factory=ReworkSettings)

    def scoped(self, key_prefix: str) -> str:
        """A Redis key prefix made this account's own (unchanged for the account `default`: the keys
        a one-account gateway has always used)."""
        return key_prefix if self.name == DEFAULT_ACCOUNT else f"{key_prefix}:acct:{self.name}"

    def __repr__(self) -> str:  # the key never shows
        return f"Account(name={self.name!r}, url={self.toloka.url!r})"


@dataclass(frozen=True)
class AccountSettings:
    """Every account, by name, and which one callers use when they name none."""

    accounts: Mapping[str, Account]
    default: str = DEFAULT_ACCOUNT

    def get(self, name: str) -> Account | None:
        """The account called `name`, or None."""
        return self.accounts.get(name)

    @property
    def default_account(self) -> Account:
        """The account calls go to when they name none."""
        return self.accounts[self.default]

    def with_key_spaces(
        self, *, dedupe: DedupeSettings, poller: PollerSettings, rework: ReworkSettings
    ) -> AccountSettings:
        """Every account with its own copy of the `[dedupe]`, `[poller]` and `[rework]` groups, each
        group's keys made the account's own."""
        return replace(
            self,
            accounts={
                name: replace(
                    account,
                    dedupe=replace(dedupe, key_prefix=account.scoped(dedupe.key_prefix)),
                    poller=replace(poller, key_prefix=account.scoped(poller.key_prefix)),
                    rework=replace(rework, key_prefix=account.scoped(rework.key_prefix)),
                )
                for name, account in self.accounts.items()
            },
        )


def single_account(
    toloka: TolokaSettings,
    limits: RateLimitSettings,
    *,
    dedupe: DedupeSettings | None = None,
    poller: PollerSettings | None = None,
    rework: ReworkSettings | None = None,
) -> AccountSettings:
    """Today's one-account configuration as the account `default` (its groups as they are: the
    account `default` keeps the keys a one-account gateway has always used)."""
    account = Account(
        DEFAULT_ACCOUNT,
        toloka,
        limits,
        dedupe=dedupe or DedupeSettings(),
        poller=poller or PollerSettings(),
        rework=rework or ReworkSettings(),
    )
    return AccountSettings({DEFAULT_ACCOUNT: account})


def _api_key(table: Mapping[str, Any], env: Mapping[str, str], where: str) -> str:
    """The account's key from the env var or file its table names (exactly one of them)."""
    if "api_key" in table:
        raise SettingsError(
            f"{where}.api_key: the key never goes in the config; name an environment variable "
            "(api_key_env) or a file (api_key_file) that holds it"
        )
    given = [k for k in _KEY_SOURCES if table.get(k)]
    if len(given) > 1:
        raise SettingsError(f"{where}: give api_key_env or api_key_file, not both")
    if not given:
        return ""
    if given[0] == "api_key_env":
        var = str(table["api_key_env"])
        key = env.get(var, "").strip()
        if not key:
            raise SettingsError(f"{where}.api_key_env: the environment variable {var} is not set")
        return key
    path = str(table["api_key_file"])
    try:
        key = Path(path).read_text().strip()
    except OSError as e:
        raise SettingsError(f"{where}.api_key_file: cannot read {path}: {e.strerror}") from None
    if not key:
        raise SettingsError(f"{where}.api_key_file: {path} is empty")
    return key


def _account(
    name: str,
    table: Mapping[str, Any],
    env: Mapping[str, str],
    shared: TolokaSettings,
    limits: RateLimitSettings,
) -> Account:
    where = f"accounts.{name}"
    if not ACCOUNT_NAME.fullmatch(name):
        raise SettingsError(
            f"{where}: an account name is 1-32 of a-z, 0-9, '-' and '_', starting with a letter"
        )
    if not table.get("url"):
        raise SettingsError(f'{where}.url: every account needs its Toloka URL (or "{EMULATOR}")')
    unknown = set(table) - _TOLOKA_OPTIONS - set(_KEY_SOURCES) - {"rate_limits", "api_key"}
    if unknown:
        raise SettingsError(f"config [{where}]: unknown key(s) {sorted(unknown)}")
    options = {k: v for k, v in table.items() if k in _TOLOKA_OPTIONS}
    toloka = apply_table(replace(shared, act_under_account_id=""), options, where)
    toloka = replace(toloka, url=toloka.url.rstrip("/"), api_key=_api_key(table, env, where))
    if not toloka.api_key and not toloka.uses_emulator:
        raise SettingsError(f"{where}: account {name!r} has no key; set api_key_env or api_key_file")
    own = rate_limits_from(section(table, "rate_limits"), {}) if "rate_limits" in table else limits
    account = Account(name, toloka, own)
    return replace(account, limits=replace(own, key_prefix=account.scoped(own.key_prefix)))


def accounts_from(
    config: Mapping[str, Any], env: Mapping[str, str], *, toloka: TolokaSettings, limits: RateLimitSettings
) -> AccountSettings:
    """AccountSettings from `[accounts]`, or the one account `default` made of `[toloka]` and
    `[rate_limits]` when the config has no `[accounts]`."""
    table = section(config, "accounts")
    chosen = config.get("default_account")
    if not table:
        if chosen not in (None, DEFAULT_ACCOUNT):
            raise SettingsError(
                f"default_account: {chosen!r} is not an account; the config has no [accounts]"
            )
        return single_account(toloka, limits)
    accounts: dict[str, Account] = {}
    for name, item in table.items():
        if not isinstance(item, Mapping):
            raise SettingsError(f"config [accounts.{name}] must be a table (url, api_key_env, ...)")
        accounts[str(name)] = _account(str(name), item, env, toloka, limits)
    if chosen is not None and (not isinstance(chosen, str) or chosen not in accounts):
        raise SettingsError(
            f"default_account: no account {chosen!r} (accounts: {', '.join(sorted(accounts))})"
        )
    default = chosen or (DEFAULT_ACCOUNT if DEFAULT_ACCOUNT in accounts else next(iter(accounts)))
    return AccountSettings(accounts, default)
