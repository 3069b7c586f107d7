"""A caller's trace through the REST front (Toloka's own wire format), and malformed headers there."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.trace import SpanKind

from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.rest.conftest import GATEWAY_KEY, Front, start_front
from tests.tracing.conftest import CALLER_SPAN, CALLER_TRACE, TRACEPARENT, Spans, hex_ids


@pytest.fixture
async def rest_emulator() -> AsyncIterator[EmulatorServer]:
    state = EmulatorState(operation_duration_s=0.2, pool_operation_duration_s=0.05)
    state.valid_api_keys = {GATEWAY_KEY}
    async with EmulatorServer(state) as emu:
        yield emu


@pytest.fixture
async def front(spans: Spans, rest_emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[Front]:
    """The REST front, started while tracing is on."""
    gw = await start_front(tmp_path, rest_emulator)
    yield Front(gw, rest_emulator)
    await gw.close()


async def rest_call(front: Front, method: str, path: str, headers: dict[str, str], **kw: Any) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"{front.url}{path}", headers={**front.auth(), **headers}, **kw) as r,
    ):
        await r.read()
        return r.status


async def create(front: Front, headers: dict[str, str]) -> int:
    params = {"async_mode": "true", "allow_defaults": "true", "operation_id": str(uuid.uuid4())}
    tasks = [{"pool_id": "1", "input_values": {"image": "https://example.com/1.png"}}]
    return await rest_call(front, "POST", "/api/v1/tasks", headers, params=params, json=tasks)


async def test_rest_create_continues_the_callers_trace_to_toloka_when_traceparent_sent(
    front: Front, spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.calls")
    assert await create(front, {"traceparent": TRACEPARENT}) == 202

    [server] = spans.named("POST /api/v1/tasks")
    assert server.kind is SpanKind.SERVER
    assert hex_ids(server)[0] == CALLER_TRACE
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 202
    names = sorted(s.name for s in spans.children_of(server))
    assert names == ["dedupe.claim", "ratelimit.wait", "toloka create_tasks"]
    [attempt] = spans.named("toloka create_tasks")
    [post] = [r for r in await front.emulator_requests("/api/v1/tasks") if r["method"] == "POST"]
    assert post["traceparent"] == "00-{}-{}-01".format(*hex_ids(attempt))
    [line] = [r for r in caplog.records if r.name == "gateway.calls" and r.getMessage() == "call"]
    assert line.__dict__["trace_id"] == CALLER_TRACE


async def test_a_relayed_request_is_traced_to_toloka_when_traceparent_sent(
    front: Front, spans: Spans
) -> None:
    assert await rest_call(front, "GET", "/api/v1/pools/1", {"traceparent": TRACEPARENT}) == 200

    [server] = spans.named("GET /api/v1/pools/{id}")
    assert [s.name for s in spans.children_of(server)] == ["ratelimit.wait", "toloka get_pool"]
    [attempt] = spans.named("toloka get_pool")
    [read] = await front.emulator_requests("/api/v1/pools/1")
    assert read["traceparent"] == "00-{}-{}-01".format(*hex_ids(attempt))
    assert hex_ids(attempt)[0] == CALLER_TRACE


async def test_the_gateways_own_quota_route_is_a_server_span_in_the_callers_trace(
    front: Front, spans: Spans
) -> None:
    assert await rest_call(front, "GET", "/gateway/v1/quota", {"traceparent": TRACEPARENT}) == 200

    [server] = spans.named("GET /gateway/v1/quota")
    assert hex_ids(server)[0] == CALLER_TRACE
    assert spans.children_of(server) == []  # answered from the limiter's state: no Toloka request


@pytest.mark.parametrize(
    "traceparent",
    ["00-abc", f"00-{CALLER_TRACE}-{'0' * 16}-01", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01-extra", " " * 600],
)
async def test_a_malformed_traceparent_header_is_ignored_and_the_request_succeeds(
    front: Front, spans: Spans, traceparent: str
) -> None:
    assert await create(front, {"traceparent": traceparent}) == 202

    [server] = spans.named("POST /api/v1/tasks")
    assert server.parent is None
    trace_id = hex_ids(server)[0]
    assert trace_id != CALLER_TRACE
    [post] = [r for r in await front.emulator_requests("/api/v1/tasks") if r["method"] == "POST"]
    assert post["traceparent"].startswith(f"00-{trace_id}-")
