"""Renders the chart with Helm's own engine (helm-python-sdk, no helm binary) and checks manifests offline."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "toloka-gateway"
KUBE_VERSION = "1.30.0"
RELEASE = "tgw"
NAMESPACE = "toloka"

# The only values a default install must supply.
REQUIRED: dict[str, Any] = {"toloka": {"apiKeySecret": {"name": "toloka-api-key"}}}


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge value layers, later layers winning (what repeated `-f` files do)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": REQUIRED,
    "redis-cluster-auth-tls": merged(
        REQUIRED,
        {
            "redis": {
                "url": "redis://redis-cluster-0.redis-cluster.data:6379/0",
                "cluster": True,
                "tls": True,
                "passwordSecret": {"name": "redis-auth", "key": "password"},
            }
        },
    ),
    "auth-token": merged(
        REQUIRED,
        {
            "auth": {
                "mode": "token",
                "requireKnownCallers": True,
                "tokensSecret": {"name": "gateway-tokens", "key": "callers.toml"},
                "callers": {
                    "batch-importer": {
                        "methods": ["CreateTasks", "WaitOperation", "GetOperation", "WatchOperation"],
                        "pools": ["101", "102"],
                    },
                    "rework-admin": {"methods": ["*"]},
                    'odd "caller" id': {"methods": [], "pools": []},
                },
            }
        },
    ),
    "auth-mtls": merged(
        REQUIRED,
        {
            "redis": {"url": "redis://redis-master.data:6379/0"},
            "auth": {
                "mode": "mtls",
                "tlsSecret": {"name": "gateway-tls"},
                "default": {"methods": ["GetOperation", "WaitOperation"], "pools": ["*"]},
                "callers": {"writer": {"methods": ["CreateTasks", "WaitOperation"], "pools": ["7"]}},
            },
        },
    ),
    "autoscaling-servicemonitor": merged(
        REQUIRED,
        {
            "redis": {"existingSecret": {"name": "redis-url", "key": "url"}},
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "rateLimits": {
                "limits": [
                    {
                        "name": "tasks_per_minute",
                        "kinds": ["create_tasks"],
                        "capacity": 200000,
                        "period": "1m",
                        "unit": "tasks",
                    },
                    {
                        "name": "tasks_per_day",
                        "kinds": ["create_tasks"],
                        "capacity": 4000000,
                        "period": "1d",
                        "unit": "tasks",
                    },
                    {"name": "account_per_second", "kinds": ["*"], "capacity": 300, "period": 1},
                ],
                "callers": {
                    "batch-importer": [
                        {
                            "name": "importer_tasks",
                            "kinds": ["create_tasks"],
                            "capacity": 20000,
                            "period": "1m",
                            "unit": "tasks",
                        }
                    ],
                    'odd "caller" id': [{"name": "odd", "capacity": 5, "period": "10s"}],
                },
                "defaultCaller": [{"name": "anyone", "capacity": 50, "period": "1s"}],
                "maxWait": "2s",
                "degradedShare": 0.25,
            },
        },
    ),
}


class Rendered:
    """The manifests of one render, by kind and as text."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = dict(files)
        self.notes = next((v for k, v in files.items() if k.endswith("NOTES.txt")), "")
        self.docs: list[dict[str, Any]] = [
            doc
            for name, text in files.items()
            if name.endswith((".yaml", ".yml"))
            for doc in yaml.safe_load_all(text)
            if doc
        ]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]

    def env(self) -> dict[str, dict[str, Any]]:
        """The container's env entries by name (order is checked separately where it matters)."""
        return {e["name"]: e for e in self.container["env"]}

    def secret_mounted_at(self, path: str) -> tuple[str, str, bool]:
        """(Secret name, key, read-only) of the file the container sees at `path`."""
        pod = self.one("Deployment")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in self.container["volumeMounts"]:
            prefix = mount["mountPath"].rstrip("/") + "/"
            if not path.startswith(prefix) or "secret" not in volumes[mount["name"]]:
                continue
            secret = volumes[mount["name"]]["secret"]
            item = next(i for i in secret["items"] if i["path"] == path.removeprefix(prefix))
            return secret["secretName"], item["key"], mount.get("readOnly") is True
        raise AssertionError(f"nothing is mounted at {path}")

    @property
    def config_toml(self) -> str:
        text: str = self.one("ConfigMap")["data"]["config.toml"]
        return text


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Any:
    """render(values) -> Rendered; raises helm_python.HelmError when Helm refuses the values."""

    def _render(values: Mapping[str, Any]) -> Rendered:
        return Rendered(chart.render(dict(values), name=RELEASE, namespace=NAMESPACE, is_install=True))

    return _render


def validate_k8s(doc: Mapping[str, Any]) -> None:
    """Validate one manifest against the Kubernetes JSON schema of KUBE_VERSION (unknown fields rejected)."""
    kubernetes_validate.validate(dict(doc), KUBE_VERSION, strict=True)
