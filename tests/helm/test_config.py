"""The rendered config.toml and container env load into the settings gateway/settings.py builds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway import settings as gs
from tests.helm.conftest import REPO, REQUIRED, SCENARIOS, Rendered


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
    assert set(tomllib.loads(rendered.config_toml)) == {"server", "toloka", "rate_limits", "dedupe", "poller"}
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


def test_rate_limits_arrive_as_written_when_limits_and_callers_are_set(render: Any, tmp_path: Path) -> None:
    limits = load_from(render(SCENARIOS["autoscaling-servicemonitor"]), tmp_path).limits
    assert limits.limits == (
        gs.LimitSpec("tasks_per_minute", ("create_tasks",), 200_000, 60.0, "tasks"),
        gs.LimitSpec("tasks_per_day", ("create_tasks",), 4_000_000, 86400.0, "tasks"),
        gs.LimitSpec("account_per_second", ("*",), 300, 1.0, "requests"),
    )
    assert dict(limits.caller_quotas) == {
        "batch-importer": (gs.LimitSpec("importer_tasks", ("create_tasks",), 20_000, 60.0, "tasks"),),
        'odd "caller" id': (gs.LimitSpec("odd", ("*",), 5, 10.0, "requests"),),
    }
    assert limits.default_caller_quota == (gs.LimitSpec("anyone", ("*",), 50, 1.0, "requests"),)
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
    assert loaded.redis_url == "rediss://:pw-test@redis-cluster-0.redis-cluster.data:6379/0?cluster=1"
    assert loaded.limits.limits == gs.default_limits(100_000, 2_000_000)


def test_create_task_limits_reach_the_gateway_when_set_in_values(render: Any, tmp_path: Path) -> None:
    values = {**REQUIRED, "rateLimits": {"createTasksPerMinute": 200_000, "createTasksPerDay": 4_000_000}}
    rendered = render(values)
    (tmp_path / "config.toml").write_text(rendered.config_toml)
    env = container_env(rendered, tmp_path, {"toloka-api-key/api-key": "sk-test-not-real"})
    assert gs.load(env=env).limits.limits == gs.default_limits(200_000, 4_000_000)


def test_every_env_name_is_one_the_gateway_reads_when_rendered(render: Any) -> None:
    source = (REPO / "gateway" / "settings.py").read_text()
    names = {e["name"] for e in render(SCENARIOS["redis-cluster-auth-tls"]).container["env"]}
    # REDIS_PASSWORD is consumed by Kubernetes' $(REDIS_PASSWORD) expansion inside REDIS_URL.
    unread = {n for n in names - {"REDIS_PASSWORD"} if f'"{n}"' not in source}
    assert not unread, f"env names gateway/settings.py never reads: {unread}"
