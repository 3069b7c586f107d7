"""The Grafana dashboard the chart ships: a ConfigMap Grafana's sidecar finds, a dashboard Grafana loads,
and queries that name only metrics (and labels) a real gateway exports on /metrics.

The exported metrics come from a scrape of a gateway started in-process against a real Redis and the
emulator, after a few real calls (gRPC and REST, a replay, a wait, a quota refusal), so every family is
declared and most carry samples whose labels can be read.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import helm_python as helm
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf import duration_pb2
from prometheus_client.parser import text_string_to_metric_families

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.helm.conftest import CHART_DIR, KUBE_VERSION, NAMESPACE, REQUIRED, Rendered, merged, validate_k8s
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config
from tests.support.redis_servers import RedisServer

DASHBOARD_FILE = CHART_DIR / "dashboards" / "toloka-gateway.json"
DATA_KEY = "toloka-gateway.json"
ENABLED = merged(REQUIRED, {"grafanaDashboard": {"enabled": True}})
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Labels Prometheus adds to every scraped series: job and instance always, the rest with a ServiceMonitor.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "endpoint", "container"})


# --- reading PromQL ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d+(?:\.\d+)?(?:ms|[smhdwy])?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){},])
  | (?P<space>\s+)
    """,
    re.VERBOSE,
)
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk"}
    | {"quantile", "limitk", "limit_ratio"}
)
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"}) | _AGGREGATIONS | _GROUPING
_RATES = frozenset({"rate", "irate", "increase", "delta", "idelta", "resets"})


@dataclass(frozen=True)
class Selector:
    """One series selector: the metric, its label matchers, and whether a rate-like function reads it."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...] = ()
    rated: bool = False

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(label for label, _, _ in self.matchers)


@dataclass
class Query:
    """What one PromQL expression names: its selectors and the labels it groups or joins by."""

    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of a PromQL expression, spaces dropped; anything unreadable raises."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"unreadable PromQL at {pos}: {expr[pos : pos + 20]!r} in {expr!r}")
        if m.lastgroup != "space":
            out.append((str(m.lastgroup), m.group()))
        pos = m.end()
    return out


def _matchers(toks: list[tuple[str, str]], i: int) -> tuple[tuple[tuple[str, str, str], ...], int]:
    """The matchers of the `{...}` that starts at toks[i]; returns them and the index after `}`."""
    found = []
    i += 1
    while toks[i][1] != "}":
        (kind, label), (_, op), (value_kind, value) = toks[i : i + 3]
        assert kind == "name" and op in ("=", "!=", "=~", "!~") and value_kind == "string", toks[i : i + 3]
        found.append((label, op, json.loads(value) if value.startswith('"') else value[1:-1]))
        i += 3
        if toks[i][1] == ",":
            i += 1
    return tuple(found), i + 1


def parse(expr: str) -> Query:
    """The metric names, matchers and grouping labels of a PromQL expression."""
    toks = tokens(expr)
    query = Query()
    rated_next = False
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1][1] if i + 1 < len(toks) else ""
        if text == "{":
            raise ValueError(f"a selector without a metric name is not checked: {expr!r}")
        if kind != "name":
            i += 1
            continue
        if text in _GROUPING and following == "(":
            close = next(j for j in range(i + 2, len(toks)) if toks[j][1] == ")")
            query.grouping |= {t for k, t in toks[i + 2 : close] if k == "name"}
            i = close + 1
        elif text in _KEYWORDS:
            i += 1
        elif following == "(":  # a function
            rated_next = rated_next or text in _RATES
            i += 1
        else:
            matchers, after = _matchers(toks, i + 1) if following == "{" else ((), i + 1)
            query.selectors.append(Selector(text, matchers, rated=rated_next))
            rated_next = False
            i = after
    return query


_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>[A-Za-z_]\w*)\s*\)\s*$", re.S)


def parse_variable(text: str) -> Query:
    """A Prometheus template variable query: label_values(selector, label) or query_result(expr)."""
    m = _LABEL_VALUES.match(text)
    if m:
        query = parse(m["selector"])
        query.grouping.add(m["label"])
        return query
    m = re.match(r"^\s*query_result\((?P<expr>.*)\)\s*$", text, re.S)
    if m:
        return parse(m["expr"])
    raise ValueError(f"unsupported variable query {text!r}")


def test_parse_reads_metrics_labels_and_grouping_when_the_query_is_tricky() -> None:
    q = parse(
        'sum by (kind, le) (rate(a_bucket{job=~"$job", x="}{,\\"by (y)"}[$__rate_interval] offset 5m))'
        " / on (kind) group_left (z) max without (w) (b) > 0.5 or vector(0) and sum(c_total)"
    )
    assert [(s.metric, s.rated) for s in q.selectors] == [
        ("a_bucket", True),
        ("b", False),
        ("c_total", False),
    ]
    assert q.selectors[0].matchers == (("job", "=~", "$job"), ("x", "=", '}{,"by (y)'))
    assert q.grouping == {"kind", "le", "z", "w"}
    v = parse_variable('label_values(m{namespace=~"$namespace"}, job)')
    assert [s.metric for s in v.selectors] == ["m"] and v.grouping == {"job"}
    with pytest.raises(ValueError, match="unreadable"):
        parse("sum(x) @ 100")


# --- what the gateway exports --------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """The series names a scrape can hold, each with its type and the labels seen on its samples."""

    types: dict[str, str]
    labels: dict[str, frozenset[str]]

    def problems(self, where: str, query: Query) -> list[str]:
        """Why `query` would show nothing or nonsense: unknown metrics, rates of gauges, unknown labels."""
        out = []
        known: set[str] = set(TARGET_LABELS)
        for s in query.selectors:
            kind = self.types.get(s.metric)
            if kind is None:
                out.append(f"{where}: {s.metric} is not exported by the gateway")
                continue
            if s.rated and kind not in ("counter", "histogram"):
                out.append(f"{where}: rate-like function over {s.metric}, a {kind}")
            if s.metric not in self.labels:
                continue  # no samples in the scrape: its labels are unknown, its name was checked
            seen = self.labels[s.metric] | TARGET_LABELS
            known |= seen
            out += [f"{where}: {s.metric} has no label {label!r}" for label in sorted(s.labels - seen)]
        if all(s.metric in self.labels for s in query.selectors):
            out += [f"{where}: no metric of it has label {g!r}" for g in sorted(query.grouping - known)]
        return out


_SERIES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "unknown": ("",),
    "info": ("_info",),
}


def exported_from(text: str) -> Exported:
    """The series a Prometheus scraping this exposition stores (counters with `_total`, histograms
    with `_bucket` / `_sum` / `_count`), whether or not the family has samples yet."""
    types: dict[str, str] = {}
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in _SERIES[family.type]:
            types[family.name + suffix] = family.type
        for sample in family.samples:
            if sample.name in types:
                labels.setdefault(sample.name, set()).update(sample.labels)
    return Exported(types, {name: frozenset(found) for name, found in labels.items()})


# Quotas for callers without their own: a second pool read in the hour is refused at once (the wait
# would pass max_wait), a second task list in the second waits. The mesh caller's quota is a shadow
# limit of the rate-limit service: it counts what it would refuse and admits.
TRAFFIC_CONFIG = """
[rate_limits]
max_wait = "5s"
default_caller = [
  { name = "one_pool_read", kinds = ["get_pool"], capacity = 1, period = "1h" },
  { name = "paced_task_list", kinds = ["list_tasks"], capacity = 1, period = "1s" },
]
[rate_limits.callers]
mesh = [{ name = "mesh_quota", capacity = 1, period = "1h" }]
[rls]
shadow_limits = ["mesh_quota"]
"""


async def grpc_calls(gw: InProcessGateway, emulator: EmulatorServer) -> None:
    """A create and its replay, a wait whose first poll Toloka fails once (a retry), a bad request."""
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
    created = await gw.stub.CreateTasks(req, metadata=gw.md())
    await gw.stub.CreateTasks(req, metadata=gw.md())  # a replay
    emulator.state.add_fault(Fault(method="GET", path="^/api/v1/operations/", times=1, status=503))
    wait = pb.WaitOperationRequest(
        operation_id=created.operation_id, timeout=duration_pb2.Duration(seconds=10)
    )
    assert (await gw.stub.WaitOperation(wait, metadata=gw.md())).done
    with pytest.raises(grpc.aio.AioRpcError):
        await gw.stub.CreateTasks(pb.CreateTasksRequest(), metadata=gw.md())
    rls = rls_pb2_grpc.RateLimitServiceStub(gw.channel)
    mesh_read = rls_pb2.RateLimitRequest(
        domain="toloka",
        descriptors=[
            ratelimit_pb2.RateLimitDescriptor(
                entries=[
                    ratelimit_pb2.RateLimitDescriptor.Entry(key="kind", value="get_pool"),
                    ratelimit_pb2.RateLimitDescriptor.Entry(key="caller", value="mesh"),
                ]
            )
        ],
    )
    for _ in range(2):  # the second is over the shadow quota, and admitted
        assert (await rls.ShouldRateLimit(mesh_read)).overall_code == rls_pb2.RateLimitResponse.OK


async def rest_calls(http: aiohttp.ClientSession, base: str) -> None:
    """Two pool reads (the second refused by a quota) and two task lists (the second waits)."""
    statuses = []
    for path in ("/pools/1", "/pools/1", "/tasks?pool_id=1", "/tasks?pool_id=1"):
        async with http.get(f"{base}/api/v1{path}", headers={"x-caller-id": "tests"}) as resp:
            statuses.append(resp.status)
    assert statuses == [200, 429, 200, 200], statuses


async def scrape_busy_gateway(redis_url: str, tmp_path: Path) -> str:
    """/metrics of a gateway on real Redis after real gRPC, REST and rate-limit service calls."""
    async with EmulatorServer(EmulatorState(operation_duration_s=0.2)) as emulator:
        gw = await start_gateway(
            toloka_url=emulator.url,
            config_path=write_config(tmp_path, TRAFFIC_CONFIG),
            redis_url=redis_url,
            env={"GATEWAY_METRICS_LISTEN": "127.0.0.1:0", "GATEWAY_REST_LISTEN": "127.0.0.1:0"},
        )
        try:
            await grpc_calls(gw, emulator)
            async with aiohttp.ClientSession() as http:
                await rest_calls(http, f"http://127.0.0.1:{gw.gateway.rest_port}")
                async with http.get(f"http://127.0.0.1:{gw.gateway.metrics_port}/metrics") as resp:
                    assert resp.status == 200
                    return await resp.text()
        finally:
            await gw.close()


@pytest.fixture(scope="module")
def exported(redis_proc: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    redis_proc.cli("FLUSHALL")
    text = asyncio.run(scrape_busy_gateway(redis_proc.url, tmp_path_factory.mktemp("dashboard")))
    return exported_from(text)


# --- the dashboard -------------------------------------------------------------------------------


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query["query"] if isinstance(query, dict) else query)


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, Query]]:
    """(where, parsed query) for every panel target and every query variable."""
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", parse(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable ${variable['name']}", parse_variable(variable_query(variable))


@pytest.fixture(scope="module")
def configmap(render: Any) -> dict[str, Any]:
    rendered: Rendered = render(ENABLED)
    (found,) = [d for d in rendered.of_kind("ConfigMap") if DATA_KEY in d.get("data", {})]
    return found


@pytest.fixture(scope="module")
def dashboard(configmap: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(configmap["data"][DATA_KEY])
    return loaded


def test_every_query_names_a_metric_the_gateway_exports_when_scraped(
    dashboard: dict[str, Any], exported: Exported
) -> None:
    found = list(queries(dashboard))
    assert len(found) > 30
    problems = list(dict.fromkeys(p for where, q in found for p in exported.problems(where, q)))
    assert not problems, "\n".join(problems)


def test_the_scrape_has_samples_of_every_metric_the_dashboard_reads_when_calls_were_made(
    dashboard: dict[str, Any], exported: Exported
) -> None:
    """Labels are checked against samples: a metric without any would have its labels unchecked."""
    read = {s.metric for _, q in queries(dashboard) for s in q.selectors}
    assert sorted(m for m in read if m in exported.types and m not in exported.labels) == []


def first_target(dashboard: dict[str, Any], metric: str) -> tuple[str, dict[str, Any]]:
    """The first panel target whose query reads `metric`, with where the check reports it."""
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if metric in {s.metric for s in parse(target["expr"]).selectors}:
                return f"panel {panel['title']!r} {target['refId']}", target
    raise AssertionError(f"no panel reads {metric}")


def test_the_check_names_the_panel_when_a_query_names_a_missing_metric_label_or_rates_a_gauge(
    dashboard: dict[str, Any], exported: Exported
) -> None:
    broken = copy.deepcopy(dashboard)
    renamed, target = first_target(broken, "toloka_gateway_toloka_retries_total")
    target["expr"] = target["expr"].replace(
        "toloka_gateway_toloka_retries_total", "toloka_gateway_retries_total"
    )
    rated, target = first_target(broken, "toloka_gateway_operation_waiters")
    target["expr"] = 'sum(rate(toloka_gateway_operation_waiters{job=~"$job"}[5m]))'
    grouped, target = first_target(broken, "toloka_gateway_calls_total")
    target["expr"] = "sum by (kind) (rate(toloka_gateway_calls_total{code='OK'}[5m]))"
    matched, target = first_target(broken, "toloka_gateway_dedupe_events_total")
    target["expr"] = 'sum(rate(toloka_gateway_dedupe_events_total{events="replays"}[5m]))'
    before = {p for where, q in queries(dashboard) for p in exported.problems(where, q)}
    after = {p for where, q in queries(broken) for p in exported.problems(where, q)}
    assert after - before == {
        f"{renamed}: toloka_gateway_retries_total is not exported by the gateway",
        f"{rated}: rate-like function over toloka_gateway_operation_waiters, a gauge",
        f"{grouped}: no metric of it has label 'kind'",
        f"{matched}: toloka_gateway_dedupe_events_total has no label 'events'",
    }


def test_dashboard_has_grafana_basics_when_rendered(dashboard: dict[str, Any]) -> None:
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["title"] and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    panels = list(all_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), ids
    for panel in panels:
        pos = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= pos.keys() and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["description"], f"{panel['title']!r} has no description"
        assert panel["datasource"] == DATASOURCE, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(t["datasource"] == DATASOURCE and t["expr"] for t in panel["targets"]), panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for panel in panels:
        if "repeat" in panel:
            assert variables[panel["repeat"]]["multi"], panel["title"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_selectors_filter_by_release_and_account_when_all_matches_a_missing_label(
    dashboard: dict[str, Any],
) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in ("namespace", "job", "account", "limit"):
        variable = variables[name]
        assert variable["includeAll"] and re.fullmatch(variable["allValue"], ""), name
    account = parse_variable(variable_query(variables["account"]))
    assert account.grouping == {"account"}  # label_values(..., account)
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            for s in parse(target["expr"]).selectors:
                filters = {(label, op, value) for label, op, value in s.matchers}
                where = f"{panel['title']!r}: {s.metric}"
                assert ("namespace", "=~", "$namespace") in filters, where
                assert ("job", "=~", "$job") in filters, where
                for label, op, value in s.matchers:
                    if label == "account":
                        assert (op, value) == ("=~", "$account"), where


def test_per_account_panels_filter_on_account_when_they_read_budgets_refusals_toloka_or_dedupe(
    dashboard: dict[str, Any],
) -> None:
    per_account = re.compile(
        r"toloka_gateway_(ratelimit_(capacity|remaining|admitted|waited|refused|shadow_refusals)"
        r"|toloka_request|toloka_retries|toloka_retry_budget|dedupe_events|operation_)"
    )
    checked = 0
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            for s in parse(target["expr"]).selectors:
                if per_account.match(s.metric):
                    checked += 1
                    assert ("account", "=~", "$account") in s.matchers, f"{panel['title']!r}: {s.metric}"
    assert checked > 20


def test_configmap_carries_the_file_and_the_sidecar_label_when_enabled(configmap: dict[str, Any]) -> None:
    assert configmap["data"][DATA_KEY] == DASHBOARD_FILE.read_text().strip()
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == NAMESPACE
    validate_k8s(configmap)


def test_configmap_stays_small_when_kubectl_apply_doubles_it(configmap: dict[str, Any]) -> None:
    data = sum(len(v.encode()) for v in configmap["data"].values())
    # kubectl apply (client side) copies the whole object into an annotation: twice the size in etcd,
    # and annotations are capped at 256 KiB.
    assert len(json.dumps(configmap).encode()) < 256 * 1024
    assert data < 1024 * 1024


def test_no_dashboard_is_rendered_when_values_are_default(render: Any) -> None:
    rendered: Rendered = render(REQUIRED)
    assert not [d for d in rendered.of_kind("ConfigMap") if DATA_KEY in d.get("data", {})]
    assert "Grafana dashboard" not in rendered.notes


def test_label_namespace_and_annotations_follow_values_when_set(render: Any) -> None:
    values = merged(
        ENABLED,
        {
            "grafanaDashboard": {
                "label": "grafana.example.com/dashboard",
                "labelValue": "toloka",
                "namespace": "monitoring",
                "labels": {"team": "data"},
                "annotations": {"grafana_folder": "Toloka"},
            }
        },
    )
    rendered: Rendered = render(values)
    (cm,) = [d for d in rendered.of_kind("ConfigMap") if DATA_KEY in d.get("data", {})]
    labels = cm["metadata"]["labels"]
    assert labels["grafana.example.com/dashboard"] == "toloka" and labels["team"] == "data"
    assert "grafana_dashboard" not in labels
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Toloka"}
    assert f"ConfigMap {cm['metadata']['name']} in namespace monitoring" in rendered.notes
    validate_k8s(cm)
    # The gateway's own ConfigMap stays where the pods are.
    (config,) = [d for d in rendered.of_kind("ConfigMap") if "config.toml" in d.get("data", {})]
    assert config["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize(
    "bad",
    [{"label": "not a label"}, {"labelValue": 1}, {"namespace": "Monitoring"}, {"enable": True}],
)
def test_schema_refuses_dashboard_values_when_they_are_not_kubernetes_names(render: Any, bad: Any) -> None:
    with pytest.raises(helm.HelmError):
        render(merged(ENABLED, {"grafanaDashboard": bad}))


def test_chart_lints_without_warnings_when_the_dashboard_is_enabled() -> None:
    report = helm.lint(CHART_DIR, ENABLED, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report
