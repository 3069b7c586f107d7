"""`[accounts]`: several Toloka accounts, each with its own URL, key (from env or a file), limits and key space."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.settings import SettingsError, load
from gateway.settings.accounts import DEFAULT_ACCOUNT, accounts_from
from gateway.settings.parsing import read_config
from gateway.settings.rate_limits import rate_limits_from
from gateway.settings.toloka import toloka_from

TWO_ACCOUNTS = """
[rate_limits]
limits = [{ name = "account_per_second", kinds = ["*"], capacity = 50, period = "1s" }]

[accounts.production]
url = "https://toloka.dev/"
api_key_env = "PROD_KEY"
act_under_account_id = "acting-prod"
request_timeout_s = "5s"

[accounts.sandbox]
url = "https://sandbox.toloka.dev"
api_key_file = "{key_file}"
[accounts.sandbox.rate_limits]
limits = [{ name = "sandbox_per_second", kinds = ["*"], capacity = 7, period = "1s" }]

"""


def _config(tmp_path: Path, text: str) -> str:
    key_file = tmp_path / "sandbox.key"
    key_file.write_text("sandbox-secret\n")
    path = tmp_path / "gateway.toml"
    path.write_text(text.replace("{key_file}", str(key_file)))
    return str(path)


def test_each_account_has_its_own_url_key_limits_and_key_space_when_several_are_configured(
    tmp_path: Path,
) -> None:
    config = read_config(_config(tmp_path, TWO_ACCOUNTS))
    env = {"PROD_KEY": " prod-secret "}
    shared = toloka_from({}, env, toloka_url=None)
    accounts = accounts_from(config, env, toloka=shared, limits=rate_limits_from(config["rate_limits"], {}))
    assert accounts.default == "production"  # none is named "default": the first declared
    prod, sandbox = accounts.accounts["production"], accounts.accounts["sandbox"]
    assert (prod.toloka.url, prod.toloka.api_key) == ("https://toloka.dev", "prod-secret")
    assert (prod.toloka.act_under_account_id, prod.toloka.request_timeout_s) == ("acting-prod", 5.0)
    assert (sandbox.toloka.api_key, sandbox.toloka.act_under_account_id) == ("sandbox-secret", "")
    assert [s.name for s in prod.limits.limits] == ["account_per_second"]  # [rate_limits], shared shape
    assert [s.name for s in sandbox.limits.limits] == ["sandbox_per_second"]  # its own table
    assert (prod.scoped("tgw"), sandbox.scoped("tgw")) == ("tgw:acct:production", "tgw:acct:sandbox")
    assert (prod.limits.key_prefix, sandbox.limits.key_prefix) == ("tgw:acct:production", "tgw:acct:sandbox")
    assert "secret" not in repr(accounts)


def test_every_account_gets_its_own_copy_of_each_keyed_group_when_several_are_served(tmp_path: Path) -> None:
    text = TWO_ACCOUNTS + '[dedupe]\nlease_s = "9s"\n[poller]\nkey_prefix = "fleet"\n'
    settings = load(env={"PROD_KEY": "k"}, config_path=_config(tmp_path, text))
    accounts = settings.toloka_accounts
    assert list(accounts.accounts) == ["production", "sandbox"]
    for name, account in accounts.accounts.items():
        groups = (account.limits, account.dedupe, account.rework)
        assert {g.key_prefix for g in groups} == {f"tgw:acct:{name}"}
        assert account.poller.key_prefix == f"fleet:acct:{name}"
        assert account.dedupe.lease_s == 9.0  # the group's other options are shared
    # The one-account fields are the default account's (the first declared here).
    assert settings.toloka == accounts.default_account.toloka
    assert (settings.limits, settings.dedupe) == (
        accounts.default_account.limits,
        accounts.default_account.dedupe,
    )


def test_one_configured_account_is_served_in_its_own_key_space_when_it_is_not_named_default(
    tmp_path: Path,
) -> None:
    text = TWO_ACCOUNTS.partition("[accounts.sandbox]")[0] + '[auth.callers.a]\naccounts = ["production"]\n'
    settings = load(env={"PROD_KEY": "prod-secret"}, config_path=_config(tmp_path, text))
    assert (settings.toloka.url, settings.toloka.api_key) == ("https://toloka.dev", "prod-secret")
    assert settings.toloka.act_under_account_id == "acting-prod"
    prefixes = {g.key_prefix for g in (settings.limits, settings.dedupe, settings.poller, settings.rework)}
    assert prefixes == {"tgw:acct:production"}
    assert settings.auth.callers["a"].accounts == ("production",)


def test_single_configuration_is_the_default_account_with_its_keys_when_no_accounts_are_given() -> None:
    settings = load(env={"TOLOKA_API_KEY": "sk", "TOLOKA_URL": "https://toloka.dev"})
    accounts = settings.toloka_accounts
    assert list(accounts.accounts) == [DEFAULT_ACCOUNT] and accounts.default == DEFAULT_ACCOUNT
    default = accounts.accounts[DEFAULT_ACCOUNT]
    assert default.toloka == settings.toloka and default.limits == settings.limits
    assert default.scoped("tgw") == "tgw" and default.limits.key_prefix == settings.limits.key_prefix


def test_default_account_names_the_account_calls_go_to_when_it_is_set(tmp_path: Path) -> None:
    text = 'default_account = "sandbox"\n' + TWO_ACCOUNTS
    settings = load(env={"PROD_KEY": "k"}, config_path=_config(tmp_path, text))
    assert settings.toloka_accounts.default == "sandbox"  # not the first declared
    assert (
        settings.toloka.url == "https://sandbox.toloka.dev"
        and settings.limits.key_prefix == "tgw:acct:sandbox"
    )


def test_account_named_default_keeps_the_old_key_space_when_accounts_are_given(tmp_path: Path) -> None:
    text = '[accounts.sandbox]\nurl = "emulator"\n[accounts.default]\nurl = "emulator"\n'
    config = read_config(_config(tmp_path, text))
    accounts = accounts_from(
        config, {}, toloka=toloka_from({}, {}, toloka_url=None), limits=rate_limits_from({}, {})
    )
    assert accounts.default == DEFAULT_ACCOUNT  # named so, though declared second
    assert accounts.accounts[DEFAULT_ACCOUNT].limits.key_prefix == "tgw"
    assert accounts.accounts["sandbox"].limits.key_prefix == "tgw:acct:sandbox"
    served = load(env={}, config_path=_config(tmp_path, '[accounts.default]\nurl = "emulator"\n'))
    assert {g.key_prefix for g in (served.limits, served.dedupe, served.poller, served.rework)} == {"tgw"}


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('[accounts.prod]\nurl = "https://toloka.dev"\n', {}, "account 'prod' has no key"),
        ('[accounts.prod]\nurl = "https://toloka.dev"\napi_key = "s3cr3t"\n', {}, "never goes in the config"),
        ('[accounts.prod]\nurl = "https://toloka.dev"\napi_key_env = "NOPE"\n', {}, "NOPE is not set"),
        (
            '[accounts.prod]\nurl = "https://t"\napi_key_env = "K"\napi_key_file = "f"\n',
            {"K": "k"},
            "not both",
        ),
        ('[accounts.prod]\napi_key_env = "K"\n', {"K": "k"}, "accounts.prod.url"),
        ('[accounts.Prod]\nurl = "emulator"\n', {}, "an account name is"),
        ('[accounts.prod]\nurl = "emulator"\ncolour = 1\n', {}, "unknown key(s) ['colour']"),
        (
            '[accounts.prod]\nurl = "emulator"\n[auth.callers.a]\naccounts = ["nope"]\n',
            {},
            "no account 'nope'",
        ),
        ('[accounts.prod]\nurl = "emulator"\n[auth.default]\naccounts = []\n', {}, "non-empty list"),
        ('[accounts.prod]\nurl = "https://t"\napi_key_file = "/nonexistent/k"\n', {}, "cannot read"),
        (
            'default_account = "prod"\n[accounts.dev]\nurl = "emulator"\n',
            {},
            "no account 'prod' (accounts: dev)",
        ),
        ('default_account = "prod"\n', {}, "the config has no [accounts]"),
        (
            '[accounts.prod]\nurl = "emulator"\n[accounts.dev]\nurl = "emulator"\n'
            '[auth.callers.a]\naccounts = ["dev"]\n[auth.callers.a.per_account.prod]\npools = ["1"]\n',
            {},
            "'prod' is not one of the caller's accounts (dev)",
        ),
        (
            '[accounts.prod]\nurl = "emulator"\n[accounts.dev]\nurl = "emulator"\n'
            '[auth.callers.a.per_account.dev]\npools = ["1"]\n',
            {},
            "the caller may not use account 'dev' (its accounts: prod)",
        ),
        (
            '[accounts.prod]\nurl = "emulator"\n[auth.callers.a.per_account.prod]\naccounts = ["prod"]\n',
            {},
            "must be a table of methods, pools, rest",
        ),
    ],
)
def test_account_config_is_refused_naming_the_problem_when_it_is_wrong(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    tomllib.loads(text)  # the cases are valid TOML: what is refused is the setting
    with pytest.raises(SettingsError) as refused:
        load(env=env, config_path=_config(tmp_path, text))
    assert message in str(refused.value)
    assert "s3cr3t" not in str(refused.value)


def test_a_callers_per_account_rights_replace_only_what_they_name_in_that_account(tmp_path: Path) -> None:
    text = TWO_ACCOUNTS + (
        '[auth.callers.a]\naccounts = ["sandbox", "production"]\nmethods = ["*"]\npools = ["7"]\n'
        '[auth.callers.a.per_account.production]\nmethods = ["GetOperation"]\n'
    )
    perms = load(env={"PROD_KEY": "k"}, config_path=_config(tmp_path, text)).auth.callers["a"]
    production, sandbox = perms.in_account("production"), perms.in_account("sandbox")
    assert (production.methods, production.pools) == (frozenset({"GetOperation"}), frozenset({"7"}))
    assert (sandbox.methods, sandbox.pools) == (frozenset({"*"}), frozenset({"7"}))  # its own
