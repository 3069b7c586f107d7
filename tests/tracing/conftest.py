"""Tracing tests: spans captured in memory from real gateways in front of the real emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from gateway.observability import tracing
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@dataclass
class Spans:
    """The spans the gateway finished, as the SDK's in-memory exporter holds them."""

    exporter: InMemorySpanExporter

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]

    def children_of(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [s for s in self.all() if s.parent is not None and s.parent.span_id == parent.context.span_id]

    def in_trace(self, trace_id: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.context is not None and f"{s.context.trace_id:032x}" == trace_id]


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    """The span's trace id and span id, as `traceparent` writes them."""
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Tracing on for this test, every finished span kept in memory (synchronously, as it ends)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield Spans(exporter)
    tracing.uninstall()
    provider.shutdown()


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    """The Toloka emulator on a free port, operations finishing after 0.3 s."""
    async with EmulatorServer(EmulatorState(operation_duration_s=0.3, pool_operation_duration_s=0.05)) as emu:
        yield emu


@pytest.fixture
async def gw(spans: Spans, emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    """A gateway with in-process state, started while tracing is on."""
    handle = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path))
    yield handle
    await handle.close()
