"""A caller's trace through the gRPC front: server span, limiter, dedupe, Toloka attempts and polls."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer
from gateway.translate.values import json_to_struct
from tests.support.gateway_harness import InProcessGateway
from tests.tracing.conftest import CALLER_SPAN, CALLER_TRACE, TRACEPARENT, Spans, hex_ids

SERVER_SPAN = "toloka.gateway.v1.TolokaGateway/CreateTasks"


def create_request(operation_id: str | None = None) -> pb.CreateTasksRequest:
    task = pb.Task(pool_id="1", overlap=1)
    json_to_struct({"image": "http://x/1.png"}, task.input_values)
    return pb.CreateTasksRequest(tasks=[task], operation_id=operation_id or str(uuid.uuid4()))


def traced_md(gw: InProcessGateway, traceparent: str = TRACEPARENT) -> tuple[tuple[str, str], ...]:
    return (*gw.md(), ("traceparent", traceparent))


async def seen_by_emulator(emulator: EmulatorServer, path: str) -> list[dict[str, Any]]:
    """The emulator's request log, read through its control route."""
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{emulator.url}/_emulator/requests", params={"path": path}) as r,
    ):
        return list(await r.json())


def one_server_span(spans: Spans, name: str = SERVER_SPAN) -> ReadableSpan:
    [server] = spans.named(name)
    return server


async def test_create_continues_the_callers_trace_to_toloka_when_traceparent_sent(
    gw: InProcessGateway, emulator: EmulatorServer, spans: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.calls")
    await gw.stub.CreateTasks(create_request(), metadata=traced_md(gw))

    server = one_server_span(spans)
    assert server.kind is SpanKind.SERVER
    assert hex_ids(server)[0] == CALLER_TRACE
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN
    assert server.attributes is not None and server.attributes["rpc.grpc.status_code"] == 0
    names = sorted(s.name for s in spans.children_of(server))
    assert names == ["dedupe.claim", "ratelimit.wait", "toloka create_tasks"]
    [claim] = spans.named("dedupe.claim")
    assert claim.attributes is not None and claim.attributes["gateway.dedupe.outcome"] == "claimed"
    [attempt] = spans.named("toloka create_tasks")
    assert attempt.kind is SpanKind.CLIENT
    assert attempt.attributes is not None
    assert attempt.attributes["http.response.status_code"] == 202
    assert attempt.attributes["http.request.resend_count"] == 0
    assert attempt.attributes["gateway.account"] == "default"  # the account whose client sent it

    [post] = await seen_by_emulator(emulator, "/api/v1/tasks")
    trace_id, span_id = hex_ids(attempt)
    assert post["traceparent"] == f"00-{trace_id}-{span_id}-01"
    assert trace_id == CALLER_TRACE

    [line] = [r for r in caplog.records if r.name == "gateway.calls" and r.getMessage() == "call"]
    assert line.__dict__["trace_id"] == CALLER_TRACE


async def test_each_attempt_is_a_span_with_its_status_and_retry_number_when_toloka_fails_first(
    gw: InProcessGateway, emulator: EmulatorServer, spans: Spans
) -> None:
    emulator.state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", times=1, status=503))
    await gw.stub.CreateTasks(create_request(), metadata=traced_md(gw))

    server = one_server_span(spans)
    attempts = sorted(spans.named("toloka create_tasks"), key=lambda s: s.start_time or 0)
    assert [a.attributes["http.response.status_code"] for a in attempts if a.attributes] == [503, 202]
    assert [a.attributes["http.request.resend_count"] for a in attempts if a.attributes] == [0, 1]
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert all(a.parent is not None and a.parent.span_id == hex_int(server) for a in attempts)
    # Every attempt is admitted by the limiter, the read that settles the 503 (did Toloka act?) too.
    toloka = [s for s in spans.children_of(server) if s.name.startswith("toloka ")]
    assert sorted(s.name for s in toloka) == ["toloka create_tasks"] * 2 + ["toloka get_operation"]
    assert len(spans.named("ratelimit.wait")) == len(toloka)
    sent = [r["traceparent"] for r in await seen_by_emulator(emulator, "/api/v1/tasks")]
    assert sent == [f"00-{hex_ids(a)[0]}-{hex_ids(a)[1]}-01" for a in attempts]


def hex_int(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_a_duplicate_is_a_replay_span_and_reaches_no_toloka_when_the_id_was_created(
    gw: InProcessGateway, emulator: EmulatorServer, spans: Spans
) -> None:
    request = create_request()
    await gw.stub.CreateTasks(request, metadata=gw.md())
    spans.exporter.clear()
    again = await gw.stub.CreateTasks(request, metadata=traced_md(gw))

    assert again.replayed
    server = one_server_span(spans)
    assert [s.name for s in spans.children_of(server)] == ["dedupe.replay"]
    [replay] = spans.named("dedupe.replay")
    assert replay.attributes is not None and replay.attributes["gateway.dedupe.outcome"] == "replayed"
    assert len(await seen_by_emulator(emulator, "/api/v1/tasks")) == 1


async def test_wait_shows_each_poll_and_its_toloka_read_when_the_operation_runs(
    gw: InProcessGateway, spans: Spans
) -> None:
    created = await gw.stub.CreateTasks(create_request(), metadata=gw.md())
    spans.exporter.clear()
    reply = await gw.stub.WaitOperation(
        pb.WaitOperationRequest(operation_id=created.operation_id), metadata=traced_md(gw), timeout=10
    )

    assert reply.done
    server = one_server_span(spans, "toloka.gateway.v1.TolokaGateway/WaitOperation")
    polls = spans.named("operation.poll")
    assert polls and all(p.parent is not None and p.parent.span_id == hex_int(server) for p in polls)
    for poll in polls:
        [read] = [s for s in spans.children_of(poll) if s.name == "toloka get_operation"]
        assert read.attributes is not None and read.attributes["http.response.status_code"] == 200
    assert all(hex_ids(s)[0] == CALLER_TRACE for s in polls)


@pytest.mark.parametrize(
    "traceparent",
    [
        "not-a-traceparent",
        f"00-{'0' * 32}-{CALLER_SPAN}-01",  # an all-zero trace id is invalid
        f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}-01",  # hex digits must be lowercase
        f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01",  # version ff is forbidden
    ],
)
async def test_a_malformed_traceparent_is_ignored_and_the_call_succeeds(
    gw: InProcessGateway, emulator: EmulatorServer, spans: Spans, traceparent: str
) -> None:
    reply = await gw.stub.CreateTasks(create_request(), metadata=traced_md(gw, traceparent))

    assert reply.operation_id
    server = one_server_span(spans)
    assert server.parent is None  # a trace of its own
    trace_id = hex_ids(server)[0]
    assert trace_id not in (CALLER_TRACE, "0" * 32)
    [post] = await seen_by_emulator(emulator, "/api/v1/tasks")
    assert post["traceparent"].startswith(f"00-{trace_id}-")
