"""The rendered config.toml and container env load into the settings gateway/settings/ builds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway import settings as gs
from gateway.limit_spec import LimitSpec
from gateway.rpc.auth import CallerAuth, load_tokens, server_credentials
from gateway.shared_state import connect_redis
from tests.helm.conftest import REPO, REQUIRED, SCENARIOS, Rendered, merged
from tests.support.certs import make_certs


def load_from(rendered: Rendered, tmp_path: Path, env: dict[str, str] | None = None) -> gs.Settings:
    path = tmp_path / "config.toml"
    path.write_text(rendered.config_toml)
    return gs.load(env=env or {}, config_path=str(path))


def container_env(rendered: Rendered, tmp_path: Path, secrets: dict[str, str]) -> dict[str, str]:
    """The environment the kubelet would give the container: literal values, secrets, $(VAR) expansion."""
    env: dict[str, str] = {}
    for entry in rendered.container["env"]:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[f"{ref['name']}/{ref['key']}"]
        else:
            env[entry["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), entry["value"]
            )
    key_file = tmp_path / "api-key"
    key_file.write_text(secrets["toloka-api-key/api-key"] + "\n")
    env["TOLOKA_API_KEY_FILE"] = str(key_file)
    env["GATEWAY_CONFIG"] = str(tmp_path / "config.toml")
    return env


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_config_toml_parses_and_loads_when_a_scenario_is_rendered(
    render: Any, tmp_path: Path, name: str
) -> None:
    rendered = render(SCENARIOS[name])
    sections = {"server", "toloka", "rate_limits", "dedupe", "poller", "auth", "rest"}
    assert set(tomllib.loads(rendered.config_toml)) == sections
    load_from(rendered, tmp_path)


def test_chart_defaults_equal_the_gateway_defaults_when_values_are_default(
    render: Any, tmp_path: Path
) -> None:
    loaded = load_from(render(REQUIRED), tmp_path)
    assert loaded.server == gs.ServerSettings()
    assert loaded.toloka == gs.TolokaSettings()
    assert loaded.dedupe == gs.DedupeSettings()
    assert loaded.poller == gs.PollerSettings()
    assert loaded.limits == gs.RateLimitSettings(limits=gs.default_limits())
    assert loaded.auth == gs.AuthSettings()
    assert loaded.rest.max_body_bytes == gs.RestSettings().max_body_bytes


def test_rate_limits_arrive_as_written_when_limits_and_callers_are_set(render: Any, tmp_path: Path) -> None:
    limits = load_from(render(SCENARIOS["autoscaling-servicemonitor"]), tmp_path).limits
    assert limits.limits == (
        LimitSpec("tasks_per_minute", ("create_tasks",), 200_000, 60.0, "tasks"),
        LimitSpec("tasks_per_day", ("create_tasks",), 4_000_000, 86400.0, "tasks"),
        LimitSpec("account_per_second", ("*",), 300, 1.0, "requests"),
    )
    assert dict(limits.caller_quotas) == {
        "batch-importer": (LimitSpec("importer_tasks", ("create_tasks",), 20_000, 60.0, "tasks"),),
        'odd "caller" id': (LimitSpec("odd", ("*",), 5, 10.0, "requests"),),
    }
    assert limits.default_caller_quota == (LimitSpec("anyone", ("*",), 50, 1.0, "requests"),)
    assert limits.max_wait_s == 2.0
    assert limits.degraded_share == 0.25


def test_drain_grace_reaches_the_server_when_set(render: Any, tmp_path: Path) -> None:
    values = {**REQUIRED, "server": {"drainGraceSeconds": 12.5}, "poller": {"maxWait": 90}}
    loaded = load_from(render(values), tmp_path)
    assert loaded.server.grace_s == 12.5
    assert loaded.poller.max_wait_s == 90.0


def test_container_env_configures_the_gateway_when_redis_cluster_with_auth(
    render: Any, tmp_path: Path
) -> None:
    rendered = render(SCENARIOS["redis-cluster-auth-tls"])
    (tmp_path / "config.toml").write_text(rendered.config_toml)
    secrets = {"toloka-api-key/api-key": "sk-test-not-real", "redis-auth/password": "pw-test"}
    loaded = gs.load(env=container_env(rendered, tmp_path, secrets))
    assert loaded.server.listen == "[::]:50051"
    assert loaded.server.caller_metadata_key == "x-caller-id"
    assert loaded.observability.metrics_listen == "[::]:9090"
    assert loaded.observability.log_level == "INFO"
    assert loaded.toloka.url == "https://toloka.dev"
    assert loaded.toloka.api_key == "sk-test-not-real"
    assert loaded.redis_url == "rediss://redis-cluster-0.redis-cluster.data:6379/0?cluster=1"
    assert loaded.redis_password == "pw-test"
    assert loaded.limits.limits == gs.default_limits(100_000, 2_000_000)
    assert loaded.server.shutdown_delay_s == 13.0  # derived from the readiness probe


def test_shutdown_delay_reaches_the_gateway_when_the_readiness_probe_is_slower(
    render: Any, tmp_path: Path
) -> None:
    values = {
        **REQUIRED,
        "probes": {"readiness": {"periodSeconds": 10, "failureThreshold": 3}},
        "terminationGracePeriodSeconds": 60,
    }
    rendered = render(values)
    (tmp_path / "config.toml").write_text(rendered.config_toml)
    env = container_env(rendered, tmp_path, {"toloka-api-key/api-key": "sk-test-not-real"})
    assert gs.load(env=env).server.shutdown_delay_s == 33.0


def test_create_task_limits_reach_the_gateway_when_set_in_values(render: Any, tmp_path: Path) -> None:
    values = {**REQUIRED, "rateLimits": {"createTasksPerMinute": 200_000, "createTasksPerDay": 4_000_000}}
    rendered = render(values)
    (tmp_path / "config.toml").write_text(rendered.config_toml)
    env = container_env(rendered, tmp_path, {"toloka-api-key/api-key": "sk-test-not-real"})
    assert gs.load(env=env).limits.limits == gs.default_limits(200_000, 4_000_000)


def test_every_env_name_is_one_the_gateway_reads_when_rendered(render: Any) -> None:
    source = "".join(p.read_text() for p in sorted((REPO / "gateway" / "settings").glob("*.py")))
    names = {e["name"] for s in SCENARIOS.values() for e in render(s).container["env"]}
    assert "REDIS_PASSWORD" in names
    unread = {n for n in names if f'"{n}"' not in source}
    assert not unread, f"env names gateway/settings/ never reads: {unread}"


@pytest.mark.parametrize(
    ("url", "username"),
    [
        ("redis://gw@redis-master.data:6379/0", "gw"),
        ("redis://redis-master.data:6379/0", None),
        ("redis://gw:$(REDIS_PASSWORD)@redis-master.data:6379/0", "gw"),  # written for older chart versions
    ],
)
def test_redis_client_gets_the_password_from_the_secret_when_password_secret_is_set(
    render: Any, tmp_path: Path, url: str, username: str | None
) -> None:
    values = {**REQUIRED, "redis": {"url": url, "passwordSecret": {"name": "redis-auth", "key": "password"}}}
    rendered = render(values)
    (tmp_path / "config.toml").write_text(rendered.config_toml)
    secrets = {"toloka-api-key/api-key": "sk-test-not-real", "redis-auth/password": "pw-test"}
    loaded = gs.load(env=container_env(rendered, tmp_path, secrets))
    client = connect_redis(loaded.redis_url, password=loaded.redis_password or None)  # no connection yet
    assert isinstance(client, Redis)  # standalone: the URL has no cluster option
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "pw-test"
    assert kwargs.get("username") == username
    assert kwargs["host"] == "redis-master.data" and kwargs["db"] == 0


def test_auth_section_loads_as_intended_when_token_mode(render: Any, tmp_path: Path) -> None:
    rendered = render(SCENARIOS["auth-token"])
    (tmp_path / "config.toml").write_text(rendered.config_toml)
    env = container_env(rendered, tmp_path, {"toloka-api-key/api-key": "sk-test-not-real"})

    as_deployed = gs.load(env=env).auth
    # The gateway reads the tokens from the file the Deployment mounts from the named Secret.
    assert rendered.secret_mounted_at(as_deployed.tokens_file) == ("gateway-tokens", "callers.toml", True)

    tokens = tmp_path / "tokens.toml"  # what the Secret's key holds
    tokens.write_text('batch-importer = "tok-importer-1"\nrework-admin = "tok-admin-2"\n')
    auth = gs.load(env={**env, "GATEWAY_AUTH_TOKENS_FILE": str(tokens)}).auth
    assert auth == gs.AuthSettings(
        mode="token",
        tokens_file=str(tokens),
        require_known_callers=True,
        callers={
            "batch-importer": gs.CallerPermissions(
                methods=frozenset({"CreateTasks", "WaitOperation", "GetOperation", "WatchOperation"}),
                pools=frozenset({"101", "102"}),
            ),
            "rework-admin": gs.CallerPermissions(methods=frozenset({"*"}), pools=frozenset({"*"})),
            'odd "caller" id': gs.CallerPermissions(methods=frozenset(), pools=frozenset()),
        },
        default=gs.CallerPermissions(),
    )
    assert set(load_tokens(auth.tokens_file)) == {"batch-importer", "rework-admin"}
    CallerAuth(settings=auth, metadata_key="x-caller-id")  # what the gateway builds at start-up
    importer = auth.permissions_for("batch-importer")
    assert (
        importer is not None and importer.allows_pool("101") and not importer.allows_method("SetReworkRules")
    )
    assert auth.permissions_for("stranger") is None


def test_auth_section_loads_and_builds_tls_credentials_when_mtls_mode(render: Any, tmp_path: Path) -> None:
    rendered = render(SCENARIOS["auth-mtls"])
    (tmp_path / "config.toml").write_text(rendered.config_toml)
    env = container_env(rendered, tmp_path, {"toloka-api-key/api-key": "sk-test-not-real"})
    auth = gs.load(env=env).auth
    assert auth.mode == "mtls"
    assert auth.require_known_callers is False
    assert auth.default == gs.CallerPermissions(
        methods=frozenset({"GetOperation", "WaitOperation"}), pools=frozenset({"*"})
    )
    assert dict(auth.callers) == {
        "writer": gs.CallerPermissions(
            methods=frozenset({"CreateTasks", "WaitOperation"}), pools=frozenset({"7"})
        )
    }
    assert rendered.secret_mounted_at(auth.tls_cert_file) == ("gateway-tls", "tls.crt", True)
    assert rendered.secret_mounted_at(auth.tls_key_file) == ("gateway-tls", "tls.key", True)
    assert rendered.secret_mounted_at(auth.tls_client_ca_file) == ("gateway-tls", "ca.crt", True)

    # The Secret's files, placed under a temporary root instead of /, load into server credentials.
    certs = make_certs(tmp_path / "pki", ())
    files = {"tls.crt": certs.server_cert, "tls.key": certs.server_key, "ca.crt": certs.ca}
    for path in (auth.tls_cert_file, auth.tls_key_file, auth.tls_client_ca_file):
        target = tmp_path / "root" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[Path(path).name].read_bytes())
    relocated = rendered.config_toml.replace('"/var/run/', f'"{tmp_path}/root/var/run/')
    (tmp_path / "config.toml").write_text(relocated)
    assert server_credentials(gs.load(env=env).auth) is not None


def test_rest_permissions_reach_the_gateway_when_a_caller_lists_them(render: Any, tmp_path: Path) -> None:
    values = merged(
        REQUIRED,
        {"auth": {"callers": {"dashboard": {"methods": ["GetOperation"], "rest": ["GET"]}, "ops": {}}}},
    )
    auth = load_from(render(values), tmp_path).auth
    dashboard, ops = auth.permissions_for("dashboard"), auth.permissions_for("ops")
    assert dashboard is not None and ops is not None
    assert dashboard.allows_rest("GET", "/api/v1/pools/1")
    assert not dashboard.allows_rest("POST", "/api/v1/pools/1/open")
    assert ops.allows_rest("POST", "/api/v1/pools/1/open")  # every gRPC method: every REST request
