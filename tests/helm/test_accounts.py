"""Several Toloka accounts (values `accounts`): each renders to an `[accounts.<name>]` table the gateway
loads, with its key read from its own Secret, mounted read-only where the table points."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from gateway import settings as gs
from gateway.limit_spec import LimitSpec
from tests.helm.conftest import (
    CHART_DIR,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    REQUIRED,
    Rendered,
    merged,
    validate_k8s,
)

SANDBOX_LIMIT = {"name": "sandbox_per_second", "capacity": 50, "period": "1s"}
ACCOUNTS: dict[str, Any] = {
    "accounts": {
        "production": {
            "url": "https://toloka.dev",
            "existingSecret": "toloka-production",
            "actUnderAccountId": "acc-42",
            "requestTimeout": "10s",
        },
        "sand_box": {
            "url": "https://sandbox.toloka.dev/",
            "existingSecret": "toloka-sandbox",
            "secretKey": "token",
            "maxConnections": 7,
            "rateLimits": {"limits": [SANDBOX_LIMIT]},
        },
    },
    "rateLimits": {
        "maxWait": "2s",
        "degradedShare": 0.5,
        "callers": {"labelling": [{"name": "labelling_per_second", "capacity": 5, "period": "1s"}]},
    },
    "auth": {
        "default": {"accounts": ["production"]},
        "callers": {
            "labelling": {"methods": ["*"], "accounts": ["sand_box", "production"]},
            "analytics": {"methods": ["GetOperation"], "accounts": ["production"]},
        },
    },
}
# What each account's Secret holds, by "secret/key".
KEYS = {
    "toloka-production/api-key": "sk-production-not-real",
    "toloka-sandbox/token": "sk-sandbox-not-real",
    "toloka-sandbox/api-key": "sk-sandbox-not-real",
    "toloka-api-key/api-key": "sk-default-not-real",
}


def with_accounts(accounts: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"accounts": accounts, **more}


def account_key_files(rendered: Rendered) -> dict[str, str]:
    """Each account's api_key_file, as the rendered config names it."""
    accounts = tomllib.loads(rendered.config_toml).get("accounts", {})
    return {name: table["api_key_file"] for name, table in accounts.items() if "api_key_file" in table}


def load_as_deployed(rendered: Rendered, tmp_path: Path) -> gs.Settings:
    """Load the rendered config with the container's env, the Secrets' files placed under tmp_path."""
    for path in account_key_files(rendered).values():
        secret, key, _ = rendered.secret_mounted_at(path)
        target = tmp_path / "root" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(KEYS[f"{secret}/{key}"] + "\n")
    config = tmp_path / "config.toml"
    config.write_text(rendered.config_toml.replace('"/var/run/', f'"{tmp_path}/root/var/run/'))
    env = {e["name"]: e["value"] for e in rendered.container["env"]}  # all literal: no key in the env
    return gs.load(env={**env, "GATEWAY_CONFIG": str(config)})


def test_two_accounts_load_into_the_gateway_with_their_own_url_key_and_limits(
    render: Any, tmp_path: Path
) -> None:
    loaded = load_as_deployed(render(ACCOUNTS), tmp_path)
    accounts = loaded.toloka_accounts
    assert set(accounts.accounts) == {"production", "sand_box"}
    assert accounts.default == "production"  # none is named `default`: the first in the config

    production = accounts.accounts["production"].toloka
    assert production.url == "https://toloka.dev"
    assert production.api_key == "sk-production-not-real"
    assert production.act_under_account_id == "acc-42"
    assert production.request_timeout_s == 10.0
    assert production.max_connections == 100  # the shared [toloka] value

    sandbox = accounts.accounts["sand_box"].toloka
    assert sandbox.url == "https://sandbox.toloka.dev"
    assert sandbox.api_key == "sk-sandbox-not-real"
    assert sandbox.act_under_account_id == ""
    assert sandbox.request_timeout_s == 30.0
    assert sandbox.max_connections == 7

    # production has no limits of its own: the global group (built-in limits, from the chart's env).
    production_limits = accounts.accounts["production"].limits
    assert production_limits.limits == gs.default_limits(100_000, 2_000_000)
    assert production_limits.key_prefix == "tgw:acct:production"
    # sand_box has its own limits; the rest of rateLimits applies to it as to the global group.
    sandbox_limits = accounts.accounts["sand_box"].limits
    assert sandbox_limits.limits == (LimitSpec("sandbox_per_second", ("*",), 50, 1.0, "requests"),)
    assert sandbox_limits.key_prefix == "tgw:acct:sand_box"
    labelling_quota = (LimitSpec("labelling_per_second", ("*",), 5, 1.0, "requests"),)
    for limits in (production_limits, sandbox_limits):
        assert limits.max_wait_s == 2.0
        assert limits.degraded_share == 0.5
        assert dict(limits.caller_quotas) == {"labelling": labelling_quota}


def test_default_account_names_where_calls_go_when_they_name_none(render: Any, tmp_path: Path) -> None:
    rendered = render({**ACCOUNTS, "defaultAccount": "sand_box"})
    assert load_as_deployed(rendered, tmp_path).toloka_accounts.default == "sand_box"  # not the first
    assert "default_account" not in render(ACCOUNTS).config_toml


def test_caller_accounts_reach_the_gateway_when_auth_lists_them(render: Any, tmp_path: Path) -> None:
    auth = load_as_deployed(render(ACCOUNTS), tmp_path).auth
    labelling, analytics = auth.permissions_for("labelling"), auth.permissions_for("analytics")
    assert labelling is not None and analytics is not None
    assert labelling.accounts == ("sand_box", "production")  # order kept: the first is its default
    assert analytics.accounts == ("production",)
    assert analytics.methods == frozenset({"GetOperation"})
    assert auth.default.accounts == ("production",)
    # A caller without `accounts` gets none rendered: the gateway's default account.
    values = merged(ACCOUNTS, {"auth": {"callers": {"ops": {}}}})
    assert load_as_deployed(render(values), tmp_path).auth.callers["ops"].accounts is None


def test_a_callers_per_account_rights_reach_the_gateway_for_that_account_only(
    render: Any, tmp_path: Path
) -> None:
    reads = {"methods": ["GetOperation", "GetQuota"], "pools": ["123"], "rest": ["GET"]}
    values = merged(ACCOUNTS, {"auth": {"callers": {"labelling": {"perAccount": {"production": reads}}}}})
    labelling = load_as_deployed(render(values), tmp_path).auth.callers["labelling"]
    production, sandbox = labelling.in_account("production"), labelling.in_account("sand_box")
    assert (production.methods, production.pools) == (
        frozenset({"GetOperation", "GetQuota"}),
        frozenset({"123"}),
    )
    assert production.rest == frozenset({"GET"})
    assert (sandbox.methods, sandbox.pools, sandbox.rest) == (frozenset({"*"}), frozenset({"*"}), None)
    # Only what a perAccount table names is replaced: the caller's pools stay where it names none.
    partial = merged(
        ACCOUNTS,
        {
            "auth": {
                "callers": {
                    "labelling": {"pools": ["7"], "perAccount": {"production": {"methods": ["GetOperation"]}}}
                }
            }
        },
    )
    kept = load_as_deployed(render(partial), tmp_path).auth.callers["labelling"].in_account("production")
    assert (kept.methods, kept.pools) == (frozenset({"GetOperation"}), frozenset({"7"}))


def test_caller_may_name_the_default_account_when_the_chart_serves_one_account(
    render: Any, tmp_path: Path
) -> None:
    values = merged(REQUIRED, {"auth": {"callers": {"ops": {"accounts": ["default"]}}}})
    rendered = render(values)
    assert 'accounts = ["default"]' in rendered.config_toml
    config = tmp_path / "config.toml"
    config.write_text(rendered.config_toml)
    assert gs.load(env={}, config_path=str(config)).auth.callers["ops"].accounts == ("default",)


def test_each_account_secret_is_mounted_read_only_with_only_its_key_where_the_config_points(
    render: Any,
) -> None:
    rendered = render(ACCOUNTS)
    files = account_key_files(rendered)
    assert files == {
        "production": "/var/run/secrets/toloka-gateway/accounts/production/api-key",
        "sand_box": "/var/run/secrets/toloka-gateway/accounts/sand_box/api-key",
    }
    assert rendered.secret_mounted_at(files["production"]) == ("toloka-production", "api-key", True)
    assert rendered.secret_mounted_at(files["sand_box"]) == ("toloka-sandbox", "token", True)

    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    secrets = {v["secret"]["secretName"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert set(secrets) == {"toloka-production", "toloka-sandbox"}  # no single-account key Secret
    assert secrets["toloka-production"]["items"] == [{"key": "api-key", "path": "api-key"}]
    assert secrets["toloka-sandbox"]["items"] == [{"key": "token", "path": "api-key"}]
    assert all(s["defaultMode"] == 0o440 for s in secrets.values())
    # Each account's directory holds its own Secret only.
    mounts = [m["mountPath"] for m in rendered.container["volumeMounts"]]
    assert len(mounts) == len(set(mounts))
    assert {str(Path(p).parent) for p in files.values()} <= set(mounts)


def test_no_key_reaches_the_config_or_the_env_when_accounts_are_set(render: Any) -> None:
    rendered = render(ACCOUNTS)
    assert not rendered.of_kind("Secret")
    for name, table in tomllib.loads(rendered.config_toml)["accounts"].items():
        assert "api_key" not in table and "api_key_env" not in table, name
    env = rendered.env()
    # The one-account env (key file, URL, act-under id) is gone; nothing in the env comes from a Secret.
    assert not {"TOLOKA_API_KEY", "TOLOKA_API_KEY_FILE", "TOLOKA_URL", "TOLOKA_ACT_UNDER_ACCOUNT_ID"} & set(
        env
    )
    assert all("valueFrom" not in e for e in env.values())
    text = "\n".join(rendered.files.values())
    assert not re.search(r"(api[_-]?key|token)\s*[:=]\s*\"?[A-Za-z0-9]{8,}", text, re.IGNORECASE)


def test_manifests_are_valid_kubernetes_and_lint_clean_when_accounts_are_set(render: Any) -> None:
    # Names that differ only in '-' and '_' still get distinct volumes with valid names.
    values = merged(
        ACCOUNTS,
        {
            "accounts": {
                "a-b": {"url": "emulator", "existingSecret": "s1"},
                "a_b": {"url": "emulator", "existingSecret": "s2"},
            }
        },
    )
    rendered = render(values)
    for doc in rendered.docs:
        validate_k8s(doc)
    volumes = [v["name"] for v in rendered.one("Deployment")["spec"]["template"]["spec"]["volumes"]]
    assert len(volumes) == len(set(volumes)) == 6  # config, tmp and one per account
    dns_label = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # what the API server requires
    assert all(dns_label.fullmatch(v) for v in volumes), volumes
    report = helm.lint(CHART_DIR, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


@pytest.mark.parametrize("values", [REQUIRED, merged(REQUIRED, {"accounts": {}})])
def test_no_accounts_table_is_rendered_when_accounts_are_not_set(render: Any, values: dict[str, Any]) -> None:
    rendered = render(values)
    assert "accounts" not in tomllib.loads(rendered.config_toml)
    assert "[accounts" not in rendered.config_toml
    assert rendered.env()["TOLOKA_API_KEY_FILE"]["value"] == "/var/run/secrets/toloka-gateway/toloka/api-key"
    mounts = [m["mountPath"] for m in rendered.container["volumeMounts"]]
    assert not [m for m in mounts if "/accounts" in m]


def test_an_emulator_account_needs_no_secret(render: Any, tmp_path: Path) -> None:
    rendered = render(
        with_accounts({"default": {"url": "emulator"}, "prod": ACCOUNTS["accounts"]["production"]})
    )
    assert "api_key_file" not in tomllib.loads(rendered.config_toml)["accounts"]["default"]
    accounts = load_as_deployed(rendered, tmp_path).toloka_accounts
    assert accounts.default == "default"  # the account named `default` is the default
    assert accounts.accounts["default"].toloka.uses_emulator
    assert accounts.accounts["default"].limits.key_prefix == "tgw"  # a one-account gateway's keys
    assert "without it, the default account default" in rendered.notes
    assert "prod: https://toloka.dev, API key from Secret toloka-production (key api-key)" in rendered.notes


def test_config_checksum_changes_when_an_account_changes(render: Any) -> None:
    def checksum(values: dict[str, Any]) -> str:
        value: str = render(values).one("Deployment")["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return value

    base = checksum(ACCOUNTS)
    assert base == checksum(ACCOUNTS)
    assert base != checksum(
        merged(ACCOUNTS, {"accounts": {"production": {"url": "https://sandbox.toloka.dev"}}})
    )
    limit = {**SANDBOX_LIMIT, "capacity": 60}
    assert base != checksum(merged(ACCOUNTS, {"accounts": {"sand_box": {"rateLimits": {"limits": [limit]}}}}))


EMULATOR = {"url": "emulator"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (with_accounts({"prod": {"existingSecret": "s"}}), "accounts.prod.url is required"),
        (
            with_accounts({"prod": {"url": "https://toloka.dev"}}),
            "accounts.prod.existingSecret is required: the name of an existing Secret",
        ),
        (
            with_accounts({"prod": {"url": "https://toloka.dev", "existingSecret": ""}}),
            "accounts.prod.existingSecret is required",
        ),
        (
            with_accounts(
                {"prod": EMULATOR}, auth={"callers": {"labelling": {"accounts": ["prod", "sandbox"]}}}
            ),
            'auth.callers.labelling.accounts: "sandbox" is not an account of this gateway (accounts: prod)',
        ),
        (
            with_accounts({"prod": EMULATOR}, auth={"default": {"accounts": ["default"]}}),
            'auth.default.accounts: "default" is not an account of this gateway (accounts: prod)',
        ),
        (
            merged(REQUIRED, {"auth": {"callers": {"ops": {"accounts": ["prod"]}}}}),
            'auth.callers.ops.accounts: "prod" is not an account of this gateway (accounts: default)',
        ),
        (
            merged(REQUIRED, with_accounts({"prod": EMULATOR})),
            "toloka.apiKeySecret.name is set, but with `accounts` every account has its own key",
        ),
        (
            with_accounts({"prod": EMULATOR}, toloka={"actUnderAccountId": "1"}),
            "toloka.actUnderAccountId is set, but with `accounts` it is not used",
        ),
        (
            with_accounts({"prod": EMULATOR}, defaultAccount="sandbox"),
            'defaultAccount: "sandbox" is not an account of this gateway (accounts: prod)',
        ),
        (
            with_accounts(
                {"prod": EMULATOR, "dev": EMULATOR},
                auth={"callers": {"a": {"accounts": ["dev"], "perAccount": {"prod": {"pools": ["1"]}}}}},
            ),
            'auth.callers.a.perAccount.prod: the caller may not use account "prod" (its accounts: dev)',
        ),
    ],
)
def test_rendering_fails_with_a_clear_message_when_an_account_is_incomplete_or_unknown(
    render: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(values)


@pytest.mark.parametrize("name", ["Prod", "1prod", "prod.eu", "a" * 33, "-prod"])
def test_rendering_fails_naming_the_account_when_its_name_is_invalid(render: Any, name: str) -> None:
    values = with_accounts({name: {"url": "https://toloka.dev", "existingSecret": "s"}})
    with pytest.raises(helm.HelmError, match=rf"'{re.escape(name)}' does not match pattern"):
        render(values)


def test_rendering_fails_naming_the_rule_when_schema_validation_is_skipped(tmp_path: Path) -> None:
    # `helm install --skip-schema-validation`: the templates refuse the name themselves.
    chart_dir = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart_dir)
    (chart_dir / "values.schema.json").unlink()
    values = with_accounts({"Prod": {"url": "https://toloka.dev", "existingSecret": "s"}})
    with helm.Chart.load(chart_dir) as chart:
        chart.render(with_accounts({"prod": EMULATOR}), name=RELEASE, namespace=NAMESPACE, is_install=True)
        with pytest.raises(
            helm.HelmError, match=re.escape('accounts: "Prod" is not a valid account name: 1-32')
        ):
            chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


@pytest.mark.parametrize(
    ("account", "message"),
    [
        ({"url": "emulator", "secret": "s"}, "secret"),
        ({"url": "toloka.dev", "existingSecret": "s"}, "url"),
        (
            {"url": "emulator", "rateLimits": {"limits": [{"name": "x", "capcity": 1, "period": "1s"}]}},
            "capcity",
        ),
        ({"url": "emulator", "rateLimits": {"maxWait": "1s"}}, "maxWait"),
        ({"url": "emulator", "apiKey": "sk-123"}, "apiKey"),
    ],
)
def test_rendering_fails_when_an_account_has_a_typo_or_unknown_key(
    render: Any, account: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(with_accounts({"prod": account}))


def test_the_readme_example_renders_and_loads_as_it_says(render: Any, tmp_path: Path) -> None:
    readme = (CHART_DIR / "README.md").read_text()
    section = readme.split("## Several Toloka accounts", 1)[1]
    example = yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])
    loaded = load_as_deployed(render(example), tmp_path)
    accounts = loaded.toloka_accounts
    assert accounts.default == "default"
    assert accounts.accounts["default"].toloka.api_key == "sk-default-not-real"
    assert accounts.accounts["default"].toloka.request_timeout_s == 10.0
    assert accounts.accounts["sandbox"].toloka.url == "https://sandbox.toloka.dev"
    assert accounts.accounts["sandbox"].limits.limits[0].name == "sandbox_per_second"
    assert loaded.auth.callers["labelling"].accounts == ("sandbox", "default")
