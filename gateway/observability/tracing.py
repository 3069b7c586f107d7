"""Tracing with OpenTelemetry: the spans of a call, from the caller's `traceparent` through to Toloka.

Spans (when tracing is on):

    server span            one per call: the RPC (`toloka.gateway.v1.TolokaGateway/CreateTasks`) or
                           the REST request (`POST /api/v1/tasks`); the caller's W3C `traceparent`
                           (gRPC metadata or HTTP header) is its parent, a malformed one is ignored
      ratelimit.wait       each admission by the rate limiter (every attempt and poll takes one)
      dedupe.claim         the operation-id claim, and the wait for another holder
      dedupe.replay        ... named so when a stored outcome answered the call instead
      toloka <kind>        each HTTP attempt: status, retry number (`http.request.resend_count`);
                           its context goes to Toloka as `traceparent`
      operation.poll       each read of an operation by the shared poller (or a single-flight read)

Off, nothing here runs: `enabled` is a module flag the hot paths read before anything else, and no
tracer provider is installed. `install` turns it on for a provider (the gateway's own, built by
`build_provider` from the `OTEL_*` variables, or a test's); `uninstall` turns it off again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.settings.tracing import TracingSettings

enabled = False  # read by every hot path before it touches anything else in this module
_tracer: trace.Tracer = trace.NoOpTracer()
_W3C = TraceContextTextMapPropagator()
SERVICE_NAME = "toloka-gateway"
# gRPC codes that make a server span an error (OpenTelemetry's RPC conventions); the others are the
# caller's mistakes, which the gateway answered correctly.
_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)

Span = trace.Span


def install(provider: trace.TracerProvider) -> None:
    """Make spans with `provider` from now on."""
    # Module state on purpose: the hot paths read one module attribute, nothing more, when off.
    global enabled, _tracer  # noqa: PLW0603
    _tracer = provider.get_tracer("gateway")
    enabled = True


def uninstall() -> None:
    """Make no spans from now on."""
    global enabled, _tracer  # noqa: PLW0603
    enabled = False
    _tracer = trace.NoOpTracer()


def build_provider(settings: TracingSettings) -> Any:
    """The SDK's TracerProvider for `settings`, its sampler, resource and exporter from `OTEL_*`.

    Returns None when tracing is off (the SDK is not even imported then).
    """
    if not settings.enabled:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    exporter: SpanExporter
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


@contextlib.contextmanager
def server_span(name: str, carrier: Mapping[str, str], attributes: Mapping[str, Any]) -> Iterator[trace.Span]:
    """The current span of one incoming call, continuing the trace of `carrier`'s `traceparent`.

    `carrier` holds the call's `traceparent` and `tracestate` (lowercase keys), when it has them;
    a malformed `traceparent` is ignored, as W3C Trace Context says, and the span starts a trace.
    """
    parent = _W3C.extract(carrier)
    span = _tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes)
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        yield span


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any], *, client: bool = False) -> Iterator[trace.Span]:
    """A child span of the current one, current while the block runs; an exception marks it an error."""
    kind = trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


def trace_id(current: trace.Span) -> str:
    """The span's trace id as 32 hex digits, as `traceparent` writes it ("" for an invalid span)."""
    context = current.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def outgoing_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current span, for a request to Toloka."""
    headers: dict[str, str] = {}
    _W3C.inject(headers)
    return headers


def end_call(current: trace.Span, code: str, attributes: Mapping[str, Any]) -> None:
    """Record a finished call's outcome on its server span (`code`: a gRPC status code's name)."""
    current.set_attributes(attributes)
    if code in _SERVER_ERRORS:
        current.set_status(trace.StatusCode.ERROR, code)


def end_http(current: trace.Span, status: int) -> None:
    """Record a finished REST request's status on its server span (a 5xx is an error)."""
    current.set_attribute("http.response.status_code", status)
    if status >= 500:
        current.set_status(trace.StatusCode.ERROR)


def current_trace_id() -> str:
    """The current span's trace id, or "" outside any span."""
    return trace_id(trace.get_current_span())


def record_attempt(outcome: str) -> None:
    """Record a Toloka attempt's outcome on the current (attempt) span: its HTTP status, or
    `network` when no answer came; a 4xx or 5xx, or none, marks it an error."""
    current = trace.get_current_span()
    if outcome.isdigit():
        status = int(outcome)
        current.set_attribute("http.response.status_code", status)
        if status >= 400:
            current.set_status(trace.StatusCode.ERROR)
    else:
        current.set_attribute("error.type", outcome)
        current.set_status(trace.StatusCode.ERROR)
