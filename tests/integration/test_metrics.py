"""Metrics scraped over HTTP after real calls show the expected series."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
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


async def test_metrics_count_calls_toloka_requests_and_dedupe_when_scraped(
    gw_metrics: InProcessGateway,
) -> None:
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    task = req.tasks.add(pool_id="1", overlap=1)
    task.input_values.update({"image": "a"})
    await gw_metrics.stub.CreateTasks(req, metadata=gw_metrics.md())
    await gw_metrics.stub.CreateTasks(req, metadata=gw_metrics.md())  # a replay
    with pytest.raises(grpc.aio.AioRpcError):
        await gw_metrics.stub.CreateTasks(pb.CreateTasksRequest(), metadata=gw_metrics.md())
    text = await scrape(gw_metrics.gateway.metrics_port)
    assert 'toloka_gateway_calls_total{code="OK",method="CreateTasks"} 2.0' in text
    assert 'toloka_gateway_calls_total{code="INVALID_ARGUMENT",method="CreateTasks"} 1.0' in text
    assert 'toloka_gateway_toloka_requests_total{kind="create_tasks",outcome="202"} 1.0' in text
    assert 'toloka_gateway_dedupe_events_total{event="replays"} 1.0' in text
    assert "toloka_gateway_call_duration_seconds_bucket" in text
    assert 'toloka_gateway_ratelimit_admitted_total{limit="' in text
    assert 'toloka_gateway_degraded{component="ratelimit"} 0.0' in text
    assert "toloka_gateway_toloka_retry_budget_tokens 10.0" in text  # a full budget: no failures yet
    assert SECRET not in text
