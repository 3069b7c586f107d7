"""Export: OTLP over gRPC to a collector when an `OTEL_*` variable asks for it; nothing at all when none does."""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from gateway.observability import tracing
from gateway.translate.values import json_to_struct
from tests.support.gateway_harness import GatewayProcess, start_gateway, write_config
from tests.tracing.conftest import CALLER_TRACE, TRACEPARENT


class Collector(otlp_grpc.TraceServiceServicer):
    """An OTLP trace collector on a free port: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.services: set[str] = set()
        self.port = 0

    async def Export(self, request: otlp.ExportTraceServiceRequest, context: Any) -> Any:
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    self.services.add(attribute.value.string_value)
            for scope in resource_spans.scope_spans:
                self.spans.extend(scope.spans)
        return otlp.ExportTraceServiceResponse()

    def names_in_trace(self, trace_id: str) -> list[str]:
        return sorted(s.name for s in self.spans if s.trace_id.hex() == trace_id)


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    server = grpc.aio.server()
    found = Collector()
    otlp_grpc.add_TraceServiceServicer_to_server(found, server)
    found.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield found
    await server.stop(None)


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(EmulatorState(operation_duration_s=0.2)) as emu:
        yield emu


def one_task() -> pb.CreateTasksRequest:
    t = pb.Task(pool_id="1", overlap=1)
    json_to_struct({"image": "a"}, t.input_values)
    return pb.CreateTasksRequest(tasks=[t], operation_id=str(uuid.uuid4()))


async def serve_one_call_and_stop(env: dict[str, str], emulator: EmulatorServer, tmp_path: Path) -> None:
    """`toloka-gateway serve` with `env`: one traced CreateTasks, then SIGTERM (which flushes spans)."""
    base = {"TOLOKA_URL": emulator.url, "TOLOKA_API_KEY": "k", "GATEWAY_CONFIG": write_config(tmp_path)}
    proc = GatewayProcess(env={**base, **env}).start(tmp_path)
    try:
        await proc.wait_serving()
        async with grpc.aio.insecure_channel(proc.target) as channel:
            md = (("x-caller-id", "tests"), ("traceparent", TRACEPARENT))
            await pb_grpc.TolokaGatewayStub(channel).CreateTasks(one_task(), metadata=md, timeout=10)
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, proc.logs()
    finally:
        proc.stop()


@pytest.mark.slow
async def test_spans_reach_the_collector_over_otlp_grpc_when_the_endpoint_is_set(
    collector: Collector, emulator: EmulatorServer, tmp_path: Path
) -> None:
    endpoint = f"http://127.0.0.1:{collector.port}"
    await serve_one_call_and_stop(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "60000"}, emulator, tmp_path
    )

    # Sent at shutdown (the batch's delay is a minute): stopping flushes what is buffered.
    names = collector.names_in_trace(CALLER_TRACE)
    assert "toloka.gateway.v1.TolokaGateway/CreateTasks" in names
    assert {"ratelimit.wait", "dedupe.claim", "toloka create_tasks"} <= set(names)
    assert collector.services == {"toloka-gateway"}
    [post] = [r for r in emulator.state.requests if r.method == "POST"]
    assert post.traceparent is not None and post.traceparent.split("-")[1] == CALLER_TRACE


@pytest.mark.slow
async def test_nothing_is_exported_when_the_exporter_is_none_even_with_an_endpoint(
    collector: Collector, emulator: EmulatorServer, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{collector.port}",
        "OTEL_TRACES_EXPORTER": "none",
    }
    await serve_one_call_and_stop(env, emulator, tmp_path)

    assert collector.spans == []
    [post] = [r for r in emulator.state.requests if r.method == "POST"]
    assert post.traceparent is None


async def test_no_provider_no_span_and_no_traceparent_when_no_otel_variable_is_set(
    emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.calls")
    # Variables the SDK reads, none of which turns tracing on.
    env = {
        "OTEL_SERVICE_NAME": "gw",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    gw = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path), env=env)
    try:
        md = (*gw.md(), ("traceparent", TRACEPARENT))
        await gw.stub.CreateTasks(one_task(), metadata=md)
        assert not tracing.enabled
        assert gw.gateway.tracer_provider is None
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # the API's default
    finally:
        await gw.close()
    [post] = [r for r in emulator.state.requests if r.method == "POST"]
    assert post.traceparent is None
    [line] = [r for r in caplog.records if r.name == "gateway.calls" and r.getMessage() == "call"]
    assert "trace_id" not in line.__dict__
