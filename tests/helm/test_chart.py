"""The chart renders valid Kubernetes 1.30 manifests, and refuses values that would deploy a broken gateway."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import helm_python as helm
import pytest

from tests.helm.conftest import CHART_DIR, KUBE_VERSION, REQUIRED, SCENARIOS, Rendered, merged, validate_k8s

SECRET_ENV = re.compile(r"API_KEY|PASSWORD|TOKEN|SECRET|CREDENTIAL", re.IGNORECASE)


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest, render: Any) -> tuple[str, Rendered]:
    name: str = request.param
    return name, render(SCENARIOS[name])


def check_service_monitor_shape(doc: dict[str, Any], rendered: Rendered) -> None:
    """The ServiceMonitor CRD is not in the core schemas: check what Prometheus Operator relies on."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    spec = doc["spec"]
    service = rendered.one("Service")
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"].startswith("/")
    assert re.fullmatch(r"\d+(ms|s|m|h)", endpoint["interval"])
    assert re.fullmatch(r"\d+(ms|s|m|h)", endpoint["scrapeTimeout"])
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}


def test_every_manifest_is_valid_kubernetes_when_rendered(scenario: tuple[str, Rendered]) -> None:
    _, rendered = scenario
    kinds = sorted(d["kind"] for d in rendered.docs)
    assert {"ConfigMap", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"} <= set(kinds)
    for doc in rendered.docs:
        if doc["kind"] == "ServiceMonitor":
            check_service_monitor_shape(doc, rendered)
        else:
            validate_k8s(doc)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_chart_lints_without_warnings_when_values_are_a_scenario(name: str) -> None:
    report = helm.lint(CHART_DIR, SCENARIOS[name], strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_deployment_has_the_production_shape_when_values_are_default(render: Any) -> None:
    rendered = render(SCENARIOS["defaults"])
    deployment = rendered.one("Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = rendered.container
    assert spec["replicas"] == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert container["args"] == ["serve"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": 50051,
        "metrics": 9090,
        "rest": 8080,
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 50051}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["resources"]["requests"] and container["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert (
        volumes[mounts["/etc/toloka-gateway"]]["configMap"]["name"]
        == rendered.one("ConfigMap")["metadata"]["name"]
    )
    assert pod["terminationGracePeriodSeconds"] == 45
    assert pod["automountServiceAccountToken"] is False
    spread = {(c["topologyKey"], c["whenUnsatisfiable"]) for c in pod["topologySpreadConstraints"]}
    assert spread == {
        ("topology.kubernetes.io/zone", "ScheduleAnyway"),
        ("kubernetes.io/hostname", "ScheduleAnyway"),
    }
    assert re.fullmatch(r"[0-9a-f]{64}", spec["template"]["metadata"]["annotations"]["checksum/config"])


def test_container_env_matches_the_gateway_contract_when_values_are_default(render: Any) -> None:
    rendered = render(SCENARIOS["defaults"])
    env = rendered.env()
    literal = {name: e["value"] for name, e in env.items() if "value" in e}
    assert literal == {
        "GATEWAY_LISTEN": "[::]:50051",
        "GATEWAY_METRICS_LISTEN": "[::]:9090",
        "GATEWAY_REST_LISTEN": "[::]:8080",
        "GATEWAY_CONFIG": "/etc/toloka-gateway/config.toml",
        "GATEWAY_LOG_LEVEL": "INFO",
        "GATEWAY_CALLER_METADATA_KEY": "x-caller-id",
        "GATEWAY_SHUTDOWN_DELAY": "13s",  # readiness probe 5 s x 2 failures + 3 s margin
        "GATEWAY_CREATE_TASKS_PER_MINUTE": "100000",
        "GATEWAY_CREATE_TASKS_PER_DAY": "2000000",
        "TOLOKA_URL": "https://toloka.dev",
        "TOLOKA_API_KEY_FILE": "/var/run/secrets/toloka-gateway/toloka/api-key",
    }
    assert "REDIS_URL" not in env  # in-process state, and NOTES warns about it with 3 replicas
    assert "WARNING: no Redis" in rendered.notes
    # The key file is a projection of exactly the named key of the existing Secret.
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    mount = next(
        m
        for m in rendered.container["volumeMounts"]
        if literal["TOLOKA_API_KEY_FILE"].startswith(m["mountPath"])
    )
    secret = next(v for v in pod["volumes"] if v["name"] == mount["name"])["secret"]
    assert secret["secretName"] == "toloka-api-key"
    assert secret["items"] == [{"key": "api-key", "path": "api-key"}]


def test_config_checksum_changes_when_the_config_changes(render: Any) -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = render(values).one("Deployment")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum(REQUIRED) != checksum(merged(REQUIRED, {"rateLimits": {"maxWait": "3s"}}))
    assert checksum(REQUIRED) == checksum(REQUIRED)


def test_service_exposes_grpc_and_metrics_when_rendered(render: Any) -> None:
    service = render(REQUIRED).one("Service")
    assert service["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["port"] == 50051 and ports["grpc"]["appProtocol"] == "grpc"
    assert ports["metrics"]["port"] == 9090


def test_service_exposes_the_rest_front_when_enabled(render: Any) -> None:
    rendered = render(REQUIRED)
    ports = {p["name"]: p for p in rendered.one("Service")["spec"]["ports"]}
    assert ports["rest"]["port"] == 8080 and ports["rest"]["targetPort"] == "rest"
    assert {"name": "rest", "containerPort": 8080, "protocol": "TCP"} in rendered.container["ports"]
    assert rendered.env()["GATEWAY_REST_LISTEN"]["value"] == "[::]:8080"
    off = render(merged(REQUIRED, {"rest": {"enabled": False}}))
    assert "rest" not in {p["name"] for p in off.one("Service")["spec"]["ports"]}
    assert "GATEWAY_REST_LISTEN" not in off.env()


def test_pdb_and_service_account_are_safe_when_values_are_default(render: Any) -> None:
    rendered = render(REQUIRED)
    assert rendered.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert rendered.one("ServiceAccount")["automountServiceAccountToken"] is False
    assert not rendered.of_kind("HorizontalPodAutoscaler") and not rendered.of_kind("ServiceMonitor")


def test_hpa_owns_the_replica_count_when_autoscaling_is_enabled(render: Any) -> None:
    rendered = render(SCENARIOS["autoscaling-servicemonitor"])
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == rendered.one("Deployment")["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in rendered.one("Deployment")["spec"]
    assert rendered.one("ServiceMonitor")["metadata"]["labels"]["release"] == "prometheus"


def test_password_is_only_an_env_var_and_url_carries_tls_and_cluster_when_cluster_with_auth(
    render: Any,
) -> None:
    rendered = render(SCENARIOS["redis-cluster-auth-tls"])
    names = [e["name"] for e in rendered.container["env"]]
    env = rendered.env()
    assert env["REDIS_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "redis-auth", "key": "password"}}
    # Kept before REDIS_URL: Kubernetes only expands $(VAR) from variables defined earlier, which a URL
    # written for older chart versions (user:$(REDIS_PASSWORD)@host) still relies on.
    assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")
    # The gateway reads REDIS_PASSWORD itself: nothing is spliced into the URL.
    assert env["REDIS_URL"]["value"] == "rediss://redis-cluster-0.redis-cluster.data:6379/0?cluster=1"
    assert "WARNING" not in rendered.notes


@pytest.mark.parametrize(
    ("redis", "expected"),
    [
        ({"url": "redis://r:6379"}, "redis://r:6379"),
        ({"url": "redis://r:6379/2?protocol=3", "cluster": True}, "redis://r:6379/2?protocol=3&cluster=1"),
        ({"url": "rediss://r:6380", "tls": True}, "rediss://r:6380"),
        ({"url": "redis://gw@r:6379", "passwordSecret": {"name": "p", "key": "k"}}, "redis://gw@r:6379"),
        ({"url": "redis://r:6379/0", "passwordSecret": {"name": "p", "key": "k"}}, "redis://r:6379/0"),
        (
            {"url": "redis://gw:$(REDIS_PASSWORD)@r:6379/1", "passwordSecret": {"name": "p", "key": "k"}},
            "redis://gw:$(REDIS_PASSWORD)@r:6379/1",
        ),
    ],
)
def test_redis_url_is_composed_when_url_variants_are_given(
    render: Any, redis: dict[str, Any], expected: str
) -> None:
    assert render(merged(REQUIRED, {"redis": redis})).env()["REDIS_URL"]["value"] == expected


def test_redis_url_comes_from_the_secret_when_existing_secret_is_set(render: Any) -> None:
    env = render(SCENARIOS["autoscaling-servicemonitor"]).env()
    assert env["REDIS_URL"] == {
        "name": "REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "redis-url", "key": "url"}},
    }
    assert "REDIS_PASSWORD" not in env


def test_password_secret_may_accompany_a_url_secret_when_the_url_has_no_password(render: Any) -> None:
    values = {
        "redis": {
            "existingSecret": {"name": "redis-url", "key": "url"},
            "passwordSecret": {"name": "redis-auth", "key": "password"},
        }
    }
    env = render(merged(REQUIRED, values)).env()
    assert env["REDIS_URL"]["valueFrom"] == {"secretKeyRef": {"name": "redis-url", "key": "url"}}
    assert env["REDIS_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "redis-auth", "key": "password"}}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCont": 2}, "replicaCont"),
        ({"redis": {"clustr": True}}, "clustr"),
        ({"rateLimits": {"limits": [{"name": "x", "capcity": 1, "period": "1s"}]}}, "capcity"),
        ({"rateLimits": {"callers": {"a": [{"name": "x", "capacity": 1, "period": "1 week"}]}}}, "period"),
        (
            {
                "rateLimits": {
                    "limits": [{"name": "x", "kinds": ["create_task"], "capacity": 1, "period": "1s"}]
                }
            },
            "kinds",
        ),
        ({"toloka": {"apiKeySecret": {"name": "k", "value": "sk-123"}}}, "value"),
        ({"auth": {"mode": "tokens"}}, "mode"),
        ({"auth": {"callers": {"a": {"method": ["CreateTasks"]}}}}, "method"),
        ({"auth": {"callers": {"a": {"methods": ["CreateTask"]}}}}, "methods"),
        ({"auth": {"default": {"pools": [1]}}}, "pools"),
        ({"auth": {"tokensSecret": {"name": "t", "token": "abc"}}}, "token"),
    ],
)
def test_rendering_fails_when_values_have_a_typo_or_unknown_key(
    render: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(merged(REQUIRED, values))


def test_rendering_fails_with_a_clear_message_when_api_key_secret_is_missing(render: Any) -> None:
    with pytest.raises(
        helm.HelmError, match=r"toloka\.apiKeySecret\.name is required: the name of an existing Secret"
    ):
        render({})


@pytest.mark.parametrize(
    "values",
    [
        {"terminationGracePeriodSeconds": 33, "preStopSleepSeconds": 0},  # equal to delay 13 + drain 20
        {"terminationGracePeriodSeconds": 10, "preStopSleepSeconds": 0},
        {"terminationGracePeriodSeconds": 38},  # 5 s preStop + 13 s delay + 20 s drain
        {"terminationGracePeriodSeconds": 30},  # the old default: no room for the delay
        {"server": {"drainGraceSeconds": 30}},
        {"server": {"shutdownDelaySeconds": 25}},
        {"probes": {"readiness": {"periodSeconds": 10, "failureThreshold": 3}}},  # derives 33 s
    ],
)
def test_rendering_fails_when_termination_grace_does_not_exceed_the_drain(
    render: Any, values: dict[str, Any]
) -> None:
    with pytest.raises(helm.HelmError, match=r"terminationGracePeriodSeconds .* must be larger than"):
        render(merged(REQUIRED, values))


def test_rendering_succeeds_when_termination_grace_exceeds_the_drain(render: Any) -> None:
    values = {
        "terminationGracePeriodSeconds": 21,
        "preStopSleepSeconds": 0,
        "server": {"shutdownDelaySeconds": 0},
    }
    pod = render(merged(REQUIRED, values)).one("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 21
    assert "lifecycle" not in pod["containers"][0]


@pytest.mark.parametrize(
    ("values", "delay"),
    [
        ({}, "13s"),  # readiness 5 s x 2 + 3 s margin
        (
            {
                "probes": {"readiness": {"periodSeconds": 10, "failureThreshold": 3}},
                "terminationGracePeriodSeconds": 60,
            },
            "33s",
        ),
        (
            {"probes": {"readiness": {"periodSeconds": 2}}, "server": {"shutdownDelayMarginSeconds": 1.5}},
            "5.5s",
        ),
        ({"server": {"shutdownDelaySeconds": 7}}, "7s"),  # an explicit value wins over the probe
        ({"server": {"shutdownDelaySeconds": 0}}, "0s"),
    ],
)
def test_shutdown_delay_is_derived_from_the_readiness_probe_when_not_set_explicitly(
    render: Any, values: dict[str, Any], delay: str
) -> None:
    assert render(merged(REQUIRED, values)).env()["GATEWAY_SHUTDOWN_DELAY"]["value"] == delay


@pytest.mark.parametrize(
    ("redis", "message"),
    [
        ({"url": "redis://:hunter2@r:6379"}, "must not contain a password"),
        (
            {"url": "redis://gw:hunter2@r:6379", "passwordSecret": {"name": "p", "key": "k"}},
            "must not contain a password",
        ),
        ({"url": "redis://:$(REDIS_PASSWORD)@r:6379"}, "passwordSecret.name is not set"),
        ({"url": "redis://r:6379", "existingSecret": {"name": "u", "key": "url"}}, "not both"),
        ({"existingSecret": {"name": "u", "key": "url"}, "cluster": True}, "Secret holds the whole URL"),
        ({"tls": True}, "need redis.url"),
        ({"passwordSecret": {"name": "p", "key": "k"}}, "need redis.url or redis.existingSecret"),
    ],
)
def test_rendering_fails_when_redis_values_conflict(render: Any, redis: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(merged(REQUIRED, {"redis": redis}))


def test_no_secret_value_appears_when_any_scenario_is_rendered(scenario: tuple[str, Rendered]) -> None:
    _, rendered = scenario
    assert not rendered.of_kind("Secret")
    env = rendered.env()
    assert "TOLOKA_API_KEY" not in env
    for name, entry in env.items():
        if SECRET_ENV.search(name) and not name.endswith("_FILE"):
            assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], name
    if "value" in env.get("REDIS_URL", {}):
        userinfo = re.match(r"^[a-z+]+://([^/@]*)@", env["REDIS_URL"]["value"])
        assert userinfo is None or userinfo.group(1).endswith(":$(REDIS_PASSWORD)")
    # Nothing resembling a credential in any manifest, the config file included.
    text = "\n".join(rendered.files.values())
    assert not re.search(r"(api[_-]?key|password|token)\s*[:=]\s*\"?[A-Za-z0-9]{8,}", text, re.IGNORECASE)


def test_schema_forbids_unknown_keys_at_every_level() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    # Free-form maps whose keys are data (caller ids, label and annotation names, resource names) or
    # Kubernetes objects passed through (checked by the API server and by the manifest validation above).
    free = {
        "callers",
        "annotations",
        "podAnnotations",
        "podLabels",
        "labels",
        "nodeSelector",
        "requests",
        "limits",
        "valueFrom",
        "nodeAffinity",
        "podAffinity",
        "podAntiAffinity",
        "tolerations",
    }

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and path.rsplit(".", 1)[-1] not in free:
                assert node.get("additionalProperties") is False, f"{path} allows unknown keys"
            for key, child in node.items():
                walk(child, f"{path}.{key}" if key not in ("properties", "items") else path)
        elif isinstance(node, list):
            for child in node:
                walk(child, path)

    walk(schema, "$")


def test_every_values_key_is_commented_when_reading_values_yaml() -> None:
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):(.*)$", line)
        if not match or not match.group(3).strip():
            continue  # a parent key: documented by the comments of its children or above it
        above = lines[i - 1].strip() if i else ""
        if not above.startswith("#"):
            undocumented.append(match.group(2))
    assert not undocumented, f"values without a comment: {undocumented}"


def test_tokens_secret_is_mounted_where_the_config_points_when_token_mode(render: Any) -> None:
    rendered = render(SCENARIOS["auth-token"])
    auth = tomllib.loads(rendered.config_toml)["auth"]
    assert auth["mode"] == "token" and auth["require_known_callers"] is True
    assert rendered.secret_mounted_at(auth["tokens_file"]) == ("gateway-tokens", "callers.toml", True)
    assert not {"tls_cert_file", "tls_key_file", "tls_client_ca_file"} & set(auth)
    # The health service is not behind the caller check, so the native gRPC probes still work.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert rendered.container[probe]["grpc"] == {"port": 50051}
    assert "authorization: Bearer <token>" in rendered.notes and "rollout restart" in rendered.notes


def test_tls_secret_is_mounted_read_only_and_probes_use_tcp_when_mtls_mode(render: Any) -> None:
    rendered = render(SCENARIOS["auth-mtls"])
    auth = tomllib.loads(rendered.config_toml)["auth"]
    assert auth["mode"] == "mtls" and "tokens_file" not in auth
    assert rendered.secret_mounted_at(auth["tls_cert_file"]) == ("gateway-tls", "tls.crt", True)
    assert rendered.secret_mounted_at(auth["tls_key_file"]) == ("gateway-tls", "tls.key", True)
    assert rendered.secret_mounted_at(auth["tls_client_ca_file"]) == ("gateway-tls", "ca.crt", True)
    # The kubelet's gRPC probe cannot do TLS with a client certificate.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "grpc" not in rendered.container[probe]
        assert rendered.container[probe]["tcpSocket"] == {"port": 50051}
    assert "tcpSocket" in rendered.notes


def test_client_ca_comes_from_its_own_secret_when_client_ca_secret_is_set(render: Any) -> None:
    values = merged(
        SCENARIOS["auth-mtls"], {"auth": {"clientCaSecret": {"name": "callers-ca", "key": "root.pem"}}}
    )
    rendered = render(values)
    auth = tomllib.loads(rendered.config_toml)["auth"]
    assert rendered.secret_mounted_at(auth["tls_client_ca_file"]) == ("callers-ca", "root.pem", True)
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")["secret"]
    assert [i["key"] for i in tls["items"]] == ["tls.crt", "tls.key"]  # no ca.crt needed in the TLS Secret
    for doc in rendered.docs:
        validate_k8s(doc)


def test_no_auth_secret_is_mounted_and_probes_stay_grpc_when_metadata_mode(render: Any) -> None:
    rendered = render(REQUIRED)
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert {v["name"] for v in pod["volumes"]} == {"config", "toloka-api-key", "tmp"}
    assert tomllib.loads(rendered.config_toml)["auth"] == {
        "mode": "metadata",
        "require_known_callers": False,
        "default": {"methods": ["*"], "pools": ["*"]},
    }
    assert "x-caller-id: me" in rendered.notes


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"mode": "token"}, "auth.mode=token needs auth.tokensSecret.name: the name of an existing Secret"),
        (
            {"mode": "mtls"},
            "auth.mode=mtls needs auth.tlsSecret.name: the name of an existing kubernetes.io/tls",
        ),
        (
            {"mode": "mtls", "clientCaSecret": {"name": "ca", "key": "ca.crt"}},
            "auth.mode=mtls needs auth.tlsSecret.name",
        ),
        (
            {"tokensSecret": {"name": "t", "key": "k"}},
            'auth.tokensSecret.name is set but auth.mode is "metadata"',
        ),
        (
            {"mode": "token", "tokensSecret": {"name": "t", "key": "k"}, "tlsSecret": {"name": "tls"}},
            "only used with auth.mode=mtls",
        ),
    ],
)
def test_rendering_fails_with_a_clear_message_when_auth_secrets_are_missing_or_unused(
    render: Any, auth: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(merged(REQUIRED, {"auth": auth}))


def test_tracing_env_is_set_only_when_an_otlp_endpoint_is_given(render: Any) -> None:
    assert not [name for name in render(REQUIRED).env() if name.startswith("OTEL_")]
    tracing = {
        "otlpEndpoint": "http://otel-collector.observability:4317",
        "sampleRatio": 0.05,
        "headersSecret": {"name": "otlp", "key": "headers"},
    }
    rendered = render(merged(REQUIRED, {"tracing": tracing}))
    validate_k8s(rendered.one("Deployment"))
    env = rendered.env()
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == tracing["otlpEndpoint"]
    assert (env["OTEL_TRACES_SAMPLER"]["value"], env["OTEL_TRACES_SAMPLER_ARG"]["value"]) == (
        "parentbased_traceidratio",
        "0.05",
    )
    assert env["OTEL_EXPORTER_OTLP_HEADERS"]["valueFrom"]["secretKeyRef"] == {
        "name": "otlp",
        "key": "headers",
    }
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" not in env  # the gateway exports over gRPC only
    names = [e["name"] for e in rendered.container["env"]]
    # $(POD_NAME) and $(POD_NAMESPACE) expand only when defined earlier in the list.
    assert names.index("POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
    assert names.index("POD_NAMESPACE") < names.index("OTEL_RESOURCE_ATTRIBUTES")
    assert "k8s.pod.name=$(POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]


@pytest.mark.parametrize(
    "tracing", [{"otlpEndpoint": "otel-collector:4317"}, {"sampleRatio": 2}, {"exporter": "zipkin"}]
)
def test_rendering_fails_when_tracing_values_are_wrong(render: Any, tracing: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render(merged(REQUIRED, {"tracing": tracing}))
