"""Prometheus metrics, each declared once, served as text on their own HTTP port.

Call and Toloka-request metrics are updated where they happen (servicer, Toloka client).
The limiter, dedupe store and poller keep plain counters; a collector reads them at scrape
time, so those layers never import Prometheus.

Every series that belongs to one Toloka account carries an `account` label (its last label): the
Toloka requests, retries and retry budget, and the limiter's, dedupe store's, poller's and pool
lock's series. One collector reads every account's layers, so each family is exposed once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from gateway.settings.accounts import DEFAULT_ACCOUNT

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
            ["kind", "outcome", "account"],
            registry=r,
        )
        self.toloka_seconds = Histogram(
            f"{PREFIX}_toloka_request_duration_seconds",
            "Toloka HTTP request latency",
            ["kind", "account"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.toloka_retries = Counter(
            f"{PREFIX}_toloka_retries",
            "Toloka requests re-sent after a retryable failure",
            ["kind", "account"],
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
        self._toloka_children: dict[tuple[str, str, str], Any] = {}
        self._toloka_latency_children: dict[tuple[str, str], Any] = {}
        self._accounts: _AccountsCollector | None = None

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

    def observe_toloka(self, kind: str, outcome: str, seconds: float, account: str = DEFAULT_ACCOUNT) -> None:
        """Count one Toloka HTTP attempt of `account` and its latency (label children cached)."""
        key = (kind, outcome, account)
        counter = self._toloka_children.get(key)
        if counter is None:
            counter = self._toloka_children[key] = self.toloka_requests.labels(kind, outcome, account)
        latency_key = (kind, account)
        histogram = self._toloka_latency_children.get(latency_key)
        if histogram is None:
            histogram = self._toloka_latency_children[latency_key] = self.toloka_seconds.labels(kind, account)
        counter.inc()
        histogram.observe(seconds)

    def observe_toloka_retry(self, kind: str, account: str = DEFAULT_ACCOUNT) -> None:
        """Count one Toloka request of `account` re-sent after a retryable failure."""
        self.toloka_retries.labels(kind, account).inc()

    def observe_rls(self, domain: str, kind: str, code: str, *, near_limit: bool) -> None:
        """Count one rate-limit service descriptor's answer."""
        self.rls_decisions.labels(domain, kind, code).inc()
        if near_limit:
            self.rls_near_limit.labels(domain, kind).inc()

    def watch_account(
        self,
        account: str,
        *,
        limiter: Any,
        dedupe: Any,
        operations: Any,
        pool_lock: Any = None,
        retry_budget: Any = None,
    ) -> None:
        """Export the counters one account's limiter, dedupe store and poller keep, its degraded
        flags and its Toloka client's retry budget, labelled `account`; once per account."""
        accounts = self._account_collector().accounts
        if account in accounts:
            raise ValueError(f"metrics: account {account!r} is watched already")
        accounts[account] = _Watched(limiter, dedupe, operations, pool_lock, retry_budget)

    def watch_request_budget(self, budget: Any) -> None:
        """Export the request memory budget: bytes reserved by requests in flight, capacity, refusals."""
        self.registry.register(_RequestBudgetCollector(budget))

    def _account_collector(self) -> _AccountsCollector:
        """The one collector of every account's layers, registered on first use."""
        if self._accounts is None:
            self._accounts = _AccountsCollector()
            self.registry.register(self._accounts)
        return self._accounts

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


@dataclass
class _Watched:
    """One account's layers, read at scrape time (any of them may be missing)."""

    limiter: Any = None
    dedupe: Any = None
    operations: Any = None
    pool_lock: Any = None
    retry_budget: Any = None


class _AccountsCollector(Collector):
    """Reads every account's layers' own counters at scrape time: each family once, with the samples
    of every account (labelled `account`, the last label)."""

    def __init__(self) -> None:
        self.accounts: dict[str, _Watched] = {}

    def collect(self) -> Iterator[Metric]:
        accounts = list(self.accounts.items())
        yield from _limiter_metrics(accounts)
        yield from _dedupe_metrics(accounts)
        yield from _operation_metrics(accounts)
        degraded = GaugeMetricFamily(
            f"{PREFIX}_degraded", "1 while a shared Redis backend is unreachable and a local fallback decides",
            labels=["component", "account"],
        )  # fmt: skip
        budget = GaugeMetricFamily(
            f"{PREFIX}_toloka_retry_budget_tokens",
            "Retry tokens left; the gateway stops retrying Toloka while half or fewer are left",
            labels=["account"],
        )
        for account, parts in accounts:
            for name, part in (
                ("ratelimit", parts.limiter),
                ("dedupe", parts.dedupe),
                ("operations", parts.operations),
                ("pool_lock", parts.pool_lock),
            ):
                with contextlib.suppress(Exception):
                    degraded.add_metric([name, account], 1.0 if getattr(part, "degraded", False) else 0.0)
            if parts.retry_budget is not None:
                budget.add_metric([account], float(parts.retry_budget.tokens))
        yield degraded
        yield budget


def _limiter_metrics(accounts: list[tuple[str, _Watched]]) -> Iterator[Metric]:
    stats = [(account, getattr(parts.limiter, "stats", None)) for account, parts in accounts]
    stats = [(account, s) for account, s in stats if s is not None]
    for field, help_text in (
        ("admitted", "Toloka requests admitted by the rate limiter, by limit"),
        ("waited", "Admissions that had to wait for capacity, by limit"),
        ("refused", "Calls refused with RESOURCE_EXHAUSTED, by limit"),
    ):
        family = CounterMetricFamily(f"{PREFIX}_ratelimit_{field}", help_text, labels=["limit", "account"])
        for account, s in stats:
            for label, value in dict(getattr(s, field, {})).items():
                family.add_metric([label, account], float(value))
        yield family
    shadow = CounterMetricFamily(
        f"{PREFIX}_ratelimit_shadow_refusals",
        "Requests a shadow limit would have refused (they were admitted: shadow limits never refuse)",
        labels=["limit", "kind", "account"],
    )
    for account, s in stats:
        for (label, kind), value in dict(getattr(s, "shadow_refused", {})).items():
            shadow.add_metric([label, kind, account], float(value))
    yield shadow
    yield from _limit_gauges(accounts)
    degraded = CounterMetricFamily(
        f"{PREFIX}_ratelimit_degraded_decisions", "Admissions decided by the local fallback",
        labels=["account"],
    )  # fmt: skip
    for account, s in stats:
        degraded.add_metric([account], float(getattr(s, "degraded_decisions", 0)))
    yield degraded


def _limit_gauges(accounts: list[tuple[str, _Watched]]) -> Iterator[Metric]:
    """Capacity (from settings) and what is left of each global limit, in the limit's unit."""
    capacity = GaugeMetricFamily(
        f"{PREFIX}_ratelimit_capacity",
        "Configured capacity of each global limit per sliding window, in its unit (requests or tasks)",
        labels=["limit", "account"],
    )
    remaining = GaugeMetricFamily(
        f"{PREFIX}_ratelimit_remaining",
        "Units left of each global limit as of this replica's latest decision on it (0 after a "
        "refusal); global limits only: a caller's own quota would need the caller as a label",
        labels=["limit", "account"],
    )
    for account, parts in accounts:
        settings = getattr(parts.limiter, "settings", None)
        for spec in getattr(settings, "limits", ()):
            capacity.add_metric([f"global/{spec.name}", account], float(spec.capacity))
        stats = getattr(parts.limiter, "stats", None)
        for label, value in dict(getattr(stats, "remaining", {})).items():
            remaining.add_metric([label, account], float(value))
    yield capacity
    yield remaining


def _dedupe_metrics(accounts: list[tuple[str, _Watched]]) -> Iterator[Metric]:
    family = CounterMetricFamily(
        f"{PREFIX}_dedupe_events", "Operation-id dedupe events (claims, replays, waits, mismatches, ...)",
        labels=["event", "account"],
    )  # fmt: skip
    errors = CounterMetricFamily(
        f"{PREFIX}_dedupe_redis_errors", "Failed dedupe calls to Redis", labels=["account"]
    )
    for account, parts in accounts:
        counters = getattr(parts.dedupe, "counters", None)
        if counters is None:
            continue
        for name, value in vars(counters).items():
            if name != "backend_errors":
                family.add_metric([name, account], float(value))
        errors.add_metric([account], float(getattr(counters, "backend_errors", 0)))
    yield family
    yield errors


def _operation_metrics(accounts: list[tuple[str, _Watched]]) -> Iterator[Metric]:
    polls = CounterMetricFamily(
        f"{PREFIX}_operation_polls", "Toloka operation polls made by this replica", labels=["account"]
    )
    active = GaugeMetricFamily(
        f"{PREFIX}_operation_pollers", "Poll loops running in this replica", labels=["account"]
    )
    waiters = GaugeMetricFamily(
        f"{PREFIX}_operation_waiters", "Calls waiting on operations in this replica", labels=["account"]
    )
    for account, parts in accounts:
        ops = parts.operations
        if ops is None:
            continue
        polls.add_metric([account], float(getattr(ops, "polls", 0)))
        active.add_metric([account], float(getattr(ops, "active_pollers", 0)))
        waiters.add_metric([account], float(getattr(ops, "waiters", 0)))
    yield polls
    yield active
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
