"""Metrics scraped over HTTP after real calls show the expected series."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import duration_pb2
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.dedupe import build_deduplicator
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer
from gateway.limit_spec import LimitSpec
from gateway.observability.metrics import GatewayMetrics
from gateway.operations import build_operation_tracker
from gateway.ratelimit.factory import build_rate_limiter
from gateway.request_kinds import ALL_KINDS
from gateway.rework.pool_lock import build_pool_lock
from gateway.service import GatewayService
from gateway.settings import (
    DedupeSettings,
    PollerSettings,
    RateLimitSettings,
    ReworkSettings,
    ServerSettings,
    TolokaSettings,
)
from gateway.settings.accounts import Account
from gateway.shared_state import SharedRedis, connect_redis
from gateway.toloka.client import TolokaClient
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

SECRET = "METRICS-SECRET-91c2"


@pytest.fixture
async def gw_metrics(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    handle = await start_gateway(
        toloka_url=emulator.url,
        config_path=write_config(tmp_path),
        env={"GATEWAY_METRICS_LISTEN": "127.0.0.1:0", "TOLOKA_API_KEY": SECRET},
    )
    yield handle
    await handle.close()


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


def create_request() -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
    return req


async def test_metrics_count_calls_toloka_requests_and_dedupe_when_scraped(
    gw_metrics: InProcessGateway,
) -> None:
    req = create_request()
    await gw_metrics.stub.CreateTasks(req, metadata=gw_metrics.md())
    await gw_metrics.stub.CreateTasks(req, metadata=gw_metrics.md())  # a replay
    with pytest.raises(grpc.aio.AioRpcError):
        await gw_metrics.stub.CreateTasks(pb.CreateTasksRequest(), metadata=gw_metrics.md())
    text = await scrape(gw_metrics.gateway.metrics_port)
    assert 'toloka_gateway_calls_total{code="OK",method="CreateTasks"} 2.0' in text
    assert 'toloka_gateway_calls_total{code="INVALID_ARGUMENT",method="CreateTasks"} 1.0' in text
    # A one-account gateway's account is `default`; the exposition sorts labels by name.
    assert (
        'toloka_gateway_toloka_requests_total{account="default",kind="create_tasks",outcome="202"} 1.0'
        in text
    )
    assert 'toloka_gateway_dedupe_events_total{account="default",event="replays"} 1.0' in text
    assert (
        'toloka_gateway_toloka_request_duration_seconds_count{account="default",kind="create_tasks"} 1.0'
        in text
    )
    assert "toloka_gateway_call_duration_seconds_bucket" in text
    assert 'toloka_gateway_ratelimit_admitted_total{account="default",limit="' in text
    assert 'toloka_gateway_degraded{account="default",component="ratelimit"} 0.0' in text
    # A full budget: no failures yet.
    assert 'toloka_gateway_toloka_retry_budget_tokens{account="default"} 10.0' in text
    assert SECRET not in text


# Every family whose series belong to one account, and the labels of its series besides `account`.
PER_ACCOUNT = {
    "toloka_gateway_toloka_requests": {"kind", "outcome"},
    "toloka_gateway_toloka_request_duration_seconds": {"kind"},
    "toloka_gateway_toloka_retries": {"kind"},
    "toloka_gateway_toloka_retry_budget_tokens": set(),
    "toloka_gateway_ratelimit_admitted": {"limit"},
    "toloka_gateway_ratelimit_waited": {"limit"},
    "toloka_gateway_ratelimit_refused": {"limit"},
    "toloka_gateway_ratelimit_shadow_refusals": {"limit", "kind"},
    "toloka_gateway_ratelimit_capacity": {"limit"},
    "toloka_gateway_ratelimit_remaining": {"limit"},
    "toloka_gateway_ratelimit_degraded_decisions": set(),
    "toloka_gateway_dedupe_events": {"event"},
    "toloka_gateway_dedupe_redis_errors": set(),
    "toloka_gateway_operation_polls": set(),
    "toloka_gateway_operation_pollers": set(),
    "toloka_gateway_operation_waiters": set(),
    "toloka_gateway_degraded": {"component"},
}
LIMITS = {
    "default": (LimitSpec("account_per_second", (ALL_KINDS,), 300, 1.0),),
    "sandbox": (LimitSpec("sandbox_per_minute", (ALL_KINDS,), 50, 60.0),),
}
# Families whose samples these calls create for both accounts (the rest may have none yet).
SAMPLED_FOR_BOTH = set(PER_ACCOUNT) - {
    "toloka_gateway_toloka_retries",
    "toloka_gateway_ratelimit_waited",
    "toloka_gateway_ratelimit_refused",
    "toloka_gateway_ratelimit_shadow_refusals",
}


@asynccontextmanager
async def two_accounts(
    metrics: GatewayMetrics, emulator: EmulatorServer, redis_url: str
) -> AsyncIterator[dict[str, GatewayService]]:
    """Two accounts' real layers on one real Redis, each in its own key space, watched by `metrics` as
    a gateway serving both builds them; their services by account."""
    shared = SharedRedis(connect_redis(redis_url))
    await shared.ready()
    prefix = f"m{uuid.uuid4().hex[:8]}"
    services: dict[str, GatewayService] = {}
    parts: list[Any] = []
    try:
        for name, specs in LIMITS.items():
            toloka_settings = TolokaSettings(url=emulator.url, api_key="emulator-key")
            account = Account(name, toloka_settings, RateLimitSettings(limits=specs))
            scoped = account.scoped(prefix)
            limiter = build_rate_limiter(replace(account.limits, key_prefix=scoped), shared)
            dedupe = build_deduplicator(DedupeSettings(key_prefix=scoped), shared)
            toloka = TolokaClient(
                settings=toloka_settings,
                base_url=emulator.url,
                limiter=limiter,
                metrics=metrics,
                account=name,
            )
            await toloka.start()
            poller = PollerSettings(key_prefix=scoped)
            operations = build_operation_tracker(poller, shared, toloka.get_operation)
            lock = build_pool_lock(ReworkSettings(key_prefix=scoped), shared)
            parts += [dedupe, operations, lock, limiter, toloka]
            metrics.watch_account(
                name,
                limiter=limiter,
                dedupe=dedupe,
                operations=operations,
                pool_lock=lock,
                retry_budget=toloka.retry_budget,
            )
            services[name] = GatewayService(
                toloka=toloka, dedupe=dedupe, operations=operations, server=ServerSettings(), poller=poller
            )
        yield services
    finally:
        for part in parts:
            await part.close()
        await shared.close()


def sample_value(
    families: dict[str, Metric], family: str, account: str, suffix: str = "_total", **labels: str
) -> float | None:
    """The value of the one sample of `family` with exactly these labels, or None when there is none."""
    wanted = {**labels, "account": account}
    found = [s.value for s in families[family].samples if s.name == family + suffix and s.labels == wanted]
    assert len(found) <= 1, (family, wanted)
    return found[0] if found else None


def check_families_once_with_account(text: str) -> dict[str, Metric]:
    """One HELP line per family, every per-account series labelled `account` and exposed once."""
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(helps) == len(set(helps)), sorted(h for h in helps if helps.count(h) > 1)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, labels in PER_ACCOUNT.items():
        samples = families[name].samples
        keys = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
        assert len(keys) == len(set(keys)), f"{name}: a series exposed twice"
        for s in samples:
            assert set(s.labels) - {"le"} == labels | {"account"}, (name, s.labels)
        if name in SAMPLED_FOR_BOTH:
            assert {s.labels["account"] for s in samples} == set(LIMITS), name
    return families


async def test_two_accounts_export_each_family_once_with_both_accounts_series_when_scraped(
    emulator: EmulatorServer, redis_url: str
) -> None:
    metrics = GatewayMetrics()
    async with two_accounts(metrics, emulator, redis_url) as services:
        with pytest.raises(ValueError, match="sandbox"):
            metrics.watch_account("sandbox", limiter=None, dedupe=None, operations=None)
        req = create_request()
        created = await services["default"].create_tasks(req, Call())
        await services["default"].create_tasks(req, Call())  # a replay
        wait = pb.WaitOperationRequest(
            operation_id=created.operation_id, timeout=duration_pb2.Duration(seconds=10)
        )
        assert (await services["default"].wait_operation(wait, Call())).done
        emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, status=503))
        for _ in range(2):  # the first is answered 503 once, and re-sent
            await services["sandbox"].create_tasks(create_request(), Call())
        text = metrics.render().decode()
    families = check_families_once_with_account(text)

    def value(family: str, account: str, suffix: str = "_total", **labels: str) -> float | None:
        return sample_value(families, f"toloka_gateway_{family}", account, suffix, **labels)

    assert value("toloka_requests", "default", kind="create_tasks", outcome="202") == 1
    assert value("toloka_requests", "sandbox", kind="create_tasks", outcome="202") == 2
    assert value("toloka_requests", "sandbox", kind="create_tasks", outcome="503") == 1
    assert value("toloka_requests", "default", kind="create_tasks", outcome="503") is None
    assert value("toloka_retries", "sandbox", kind="create_tasks") == 1
    assert value("toloka_retries", "default", kind="create_tasks") is None
    assert value("dedupe_events", "default", event="claims") == 1
    assert value("dedupe_events", "default", event="replays") == 1
    assert value("dedupe_events", "sandbox", event="claims") == 2
    assert value("dedupe_events", "sandbox", event="replays") == 0
    assert value("ratelimit_capacity", "default", "", limit="global/account_per_second") == 300
    assert value("ratelimit_capacity", "sandbox", "", limit="global/sandbox_per_minute") == 50
    assert value("ratelimit_capacity", "default", "", limit="global/sandbox_per_minute") is None
    # Three creates sent (one re-sent) and the read of the operation before the re-send.
    assert value("ratelimit_remaining", "sandbox", "", limit="global/sandbox_per_minute") == 50 - 4
    assert (value("operation_polls", "default") or 0) >= 1
    assert value("operation_polls", "sandbox") == 0
    assert value("toloka_retry_budget_tokens", "default", "") == 10  # each account's client its own budget
    assert (value("toloka_retry_budget_tokens", "sandbox", "") or 10) < 10
    for account in LIMITS:
        for component in ("ratelimit", "dedupe", "operations", "pool_lock"):
            assert value("degraded", account, "", component=component) == 0
