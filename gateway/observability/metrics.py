"""Prometheus metrics, each declared once, served as text on their own HTTP port.

Call and Toloka-request metrics are updated where they happen (servicer, Toloka client).
The limiter, dedupe store and poller keep plain counters; a collector reads them at scrape
time, so those layers never import Prometheus.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

PREFIX = "toloka_gateway"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class GatewayMetrics:
    """Every metric the gateway exports, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            f"{PREFIX}_calls", "gRPC calls by method and status code", ["method", "code"], registry=r
        )
        self.call_seconds = Histogram(
            f"{PREFIX}_call_duration_seconds",
            "gRPC call latency",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.toloka_requests = Counter(
            f"{PREFIX}_toloka_requests",
            "Toloka HTTP requests by kind and outcome (HTTP status, or 'network')",
            ["kind", "outcome"],
            registry=r,
        )
        self.toloka_seconds = Histogram(
            f"{PREFIX}_toloka_request_duration_seconds",
            "Toloka HTTP request latency",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.toloka_retries = Counter(
            f"{PREFIX}_toloka_retries",
            "Toloka requests re-sent after a retryable failure",
            ["kind"],
            registry=r,
        )
        self.rls_decisions = Counter(
            f"{PREFIX}_rls_decisions",
            "Rate-limit service descriptors decided, by domain, request kind and code (OK, OVER_LIMIT)",
            ["domain", "kind", "code"],
            registry=r,
        )
        self.rls_near_limit = Counter(
            f"{PREFIX}_rls_near_limit",
            "Rate-limit service descriptors admitted with 80% or more of their tightest limit used",
            ["domain", "kind"],
            registry=r,
        )
        self.rls_shadow_refusals = Counter(
            f"{PREFIX}_rls_shadow_refusals",
            "Requests a shadow-mode limit would have refused (admitted: shadow limits never refuse)",
            ["domain", "limit"],
            registry=r,
        )
        self.rls_seconds = Histogram(
            f"{PREFIX}_rls_decision_duration_seconds",
            "ShouldRateLimit latency inside the gateway (Envoy's filter times out at 20 ms by default)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
            registry=r,
        )
        self._runner: web.AppRunner | None = None
        self._call_children: dict[tuple[str, str], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._toloka_children: dict[tuple[str, str], Any] = {}
        self._toloka_latency_children: dict[str, Any] = {}

    def observe_call(self, method: str, code: str, seconds: float) -> None:
        """Count one finished gRPC call and its latency (label children cached: this is per call)."""
        key = (method, code)
        counter = self._call_children.get(key)
        if counter is None:
            counter = self._call_children[key] = self.calls.labels(method, code)
        histogram = self._latency_children.get(method)
        if histogram is None:
            histogram = self._latency_children[method] = self.call_seconds.labels(method)
        counter.inc()
        histogram.observe(seconds)

    def observe_toloka(self, kind: str, outcome: str, seconds: float) -> None:
        """Count one Toloka HTTP attempt and its latency."""
        key = (kind, outcome)
        counter = self._toloka_children.get(key)
        if counter is None:
            counter = self._toloka_children[key] = self.toloka_requests.labels(kind, outcome)
        histogram = self._toloka_latency_children.get(kind)
        if histogram is None:
            histogram = self._toloka_latency_children[kind] = self.toloka_seconds.labels(kind)
        counter.inc()
        histogram.observe(seconds)

    def observe_rls(self, domain: str, kind: str, code: str, *, near_limit: bool) -> None:
        """Count one rate-limit service descriptor's answer."""
        self.rls_decisions.labels(domain, kind, code).inc()
        if near_limit:
            self.rls_near_limit.labels(domain, kind).inc()

    def watch(self, *, limiter: Any, dedupe: Any, operations: Any, pool_lock: Any = None) -> None:
        """Export the counters the limiter, dedupe store and poller keep, and every degraded flag."""
        self.registry.register(
            _ComponentCollector(limiter=limiter, dedupe=dedupe, operations=operations, pool_lock=pool_lock)
        )

    def watch_retry_budget(self, budget: Any) -> None:
        """Export the Toloka client's retry budget (tokens left; retries stop at half or fewer)."""
        self.registry.register(_RetryBudgetCollector(budget))

    def watch_request_budget(self, budget: Any) -> None:
        """Export the request memory budget: bytes reserved by requests in flight, capacity, refusals."""
        self.registry.register(_RequestBudgetCollector(budget))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    async def serve(self, listen: str) -> int:
        """Serve `/metrics` on `listen` (HOST:PORT); returns the bound port."""
        host, _, port = listen.rpartition(":")

        async def handle(_: web.Request) -> web.Response:
            return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]") or "0.0.0.0", int(port))
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else int(port)

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class _ComponentCollector(Collector):
    """Reads the layers' own counters at scrape time."""

    def __init__(self, *, limiter: Any, dedupe: Any, operations: Any, pool_lock: Any) -> None:
        self._limiter = limiter
        self._dedupe = dedupe
        self._operations = operations
        self._pool_lock = pool_lock

    def collect(self) -> Iterator[Metric]:
        yield from self._limiter_metrics()
        yield from self._dedupe_metrics()
        yield from self._operation_metrics()
        degraded = GaugeMetricFamily(
            f"{PREFIX}_degraded", "1 while a shared Redis backend is unreachable and a local fallback decides",
            labels=["component"],
        )  # fmt: skip
        for name, part in (
            ("ratelimit", self._limiter),
            ("dedupe", self._dedupe),
            ("operations", self._operations),
            ("pool_lock", self._pool_lock),
        ):
            with contextlib.suppress(Exception):
                degraded.add_metric([name], 1.0 if getattr(part, "degraded", False) else 0.0)
        yield degraded

    def _limiter_metrics(self) -> Iterator[Metric]:
        stats = getattr(self._limiter, "stats", None)
        if stats is None:
            return
        for field, help_text in (
            ("admitted", "Toloka requests admitted by the rate limiter, by limit"),
            ("waited", "Admissions that had to wait for capacity, by limit"),
            ("refused", "Calls refused with RESOURCE_EXHAUSTED, by limit"),
        ):
            family = CounterMetricFamily(f"{PREFIX}_ratelimit_{field}", help_text, labels=["limit"])
            for label, value in dict(getattr(stats, field, {})).items():
                family.add_metric([label], float(value))
            yield family
        shadow = CounterMetricFamily(
            f"{PREFIX}_ratelimit_shadow_refusals",
            "Requests a shadow limit would have refused (they were admitted: shadow limits never refuse)",
            labels=["limit", "kind"],
        )
        for (label, kind), value in dict(getattr(stats, "shadow_refused", {})).items():
            shadow.add_metric([label, kind], float(value))
        yield shadow
        yield from self._limit_gauges(stats)
        yield CounterMetricFamily(
            f"{PREFIX}_ratelimit_degraded_decisions", "Admissions decided by the local fallback",
            value=float(getattr(stats, "degraded_decisions", 0)),
        )  # fmt: skip

    def _limit_gauges(self, stats: Any) -> Iterator[Metric]:
        """Capacity (from settings) and what is left of each global limit, in the limit's unit."""
        capacity = GaugeMetricFamily(
            f"{PREFIX}_ratelimit_capacity",
            "Configured capacity of each global limit per sliding window, in its unit (requests or tasks)",
            labels=["limit"],
        )
        settings = getattr(self._limiter, "settings", None)
        for spec in getattr(settings, "limits", ()):
            capacity.add_metric([f"global/{spec.name}"], float(spec.capacity))
        yield capacity
        remaining = GaugeMetricFamily(
            f"{PREFIX}_ratelimit_remaining",
            "Units left of each global limit as of this replica's latest decision on it (0 after a "
            "refusal); global limits only: a caller's own quota would need the caller as a label",
            labels=["limit"],
        )
        for label, value in dict(getattr(stats, "remaining", {})).items():
            remaining.add_metric([label], float(value))
        yield remaining

    def _dedupe_metrics(self) -> Iterator[Metric]:
        counters = getattr(self._dedupe, "counters", None)
        if counters is None:
            return
        family = CounterMetricFamily(
            f"{PREFIX}_dedupe_events", "Operation-id dedupe events (claims, replays, waits, mismatches, ...)",
            labels=["event"],
        )  # fmt: skip
        for name, value in vars(counters).items():
            if name != "backend_errors":
                family.add_metric([name], float(value))
        yield family
        errors = CounterMetricFamily(f"{PREFIX}_dedupe_redis_errors", "Failed dedupe calls to Redis")
        errors.add_metric([], float(getattr(counters, "backend_errors", 0)))
        yield errors

    def _operation_metrics(self) -> Iterator[Metric]:
        ops = self._operations
        if ops is None:
            return
        polls = CounterMetricFamily(
            f"{PREFIX}_operation_polls", "Toloka operation polls made by this replica"
        )
        polls.add_metric([], float(getattr(ops, "polls", 0)))
        yield polls
        active = GaugeMetricFamily(f"{PREFIX}_operation_pollers", "Poll loops running in this replica")
        active.add_metric([], float(getattr(ops, "active_pollers", 0)))
        yield active
        waiters = GaugeMetricFamily(
            f"{PREFIX}_operation_waiters", "Calls waiting on operations in this replica"
        )
        waiters.add_metric([], float(getattr(ops, "waiters", 0)))
        yield waiters


class _RequestBudgetCollector(Collector):
    """Reads the request memory budget's counters at scrape time."""

    def __init__(self, budget: Any) -> None:
        self._budget = budget

    def collect(self) -> Iterator[Metric]:
        b = self._budget
        yield GaugeMetricFamily(
            f"{PREFIX}_request_memory_reserved_bytes",
            "Memory reserved by requests in flight (raw size x factor), against the budget",
            value=float(b.reserved_bytes),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_request_memory_budget_bytes", "The in-flight request memory budget",
            value=float(b.capacity_bytes),
        )  # fmt: skip
        yield CounterMetricFamily(
            f"{PREFIX}_request_memory_refused", "Requests refused because the memory budget had no room",
            value=float(b.refused),
        )  # fmt: skip


class _RetryBudgetCollector(Collector):
    """Reads the Toloka client's retry budget at scrape time."""

    def __init__(self, budget: Any) -> None:
        self._budget = budget

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{PREFIX}_toloka_retry_budget_tokens",
            "Retry tokens left; the gateway stops retrying Toloka while half or fewer are left",
            value=float(self._budget.tokens),
        )
