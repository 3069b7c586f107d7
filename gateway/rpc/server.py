"""Builds the grpc.aio server: the gateway service, health, reflection, limits and keepalive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import _async as health_aio  # published as grpc_health.v1.health.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.observability.metrics import GatewayMetrics
from gateway.rls import RLS_SERVICE_NAME, RateLimitServicer, add_to_server
from gateway.rpc.auth import CallerAuth
from gateway.rpc.incoming import RequestDecoder
from gateway.rpc.interceptor import CallInterceptor
from gateway.rpc.request_budget import RequestMemoryBudget
from gateway.rpc.servicer import TolokaGatewayServicer
from gateway.settings import ServerSettings

SERVICE = pb.DESCRIPTOR.services_by_name["TolokaGateway"]
SERVICE_NAME = SERVICE.full_name
# Connections are rotated this often so new replicas get traffic behind L4 balancers.
MAX_CONNECTION_AGE_MS = 30 * 60 * 1000

_HANDLER_KINDS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


STREAM_WINDOW_BYTES = 1 << 20


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """Channel options: message size for 10,000-task requests; keepalive a service mesh tolerates.

    Every name must be one gRPC core knows: it ignores an unknown name without a word (a test checks).
    """
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        # Clients and meshes may ping this often, with or without calls, without a GOAWAY too_many_pings.
        ("grpc.http2.min_ping_interval_without_data_ms", int(settings.min_ping_interval_s * 1000)),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
        ("grpc.max_connection_age_grace_ms", int(settings.grace_s * 1000)),
        # A fixed 1 MiB receive window per stream instead of one that BDP probing grows with
        # throughput: a streaming caller (ImportTasks) the gateway has stopped reading (backpressure)
        # can then park at most 1 MiB in the gateway, not as much as the link carried lately.
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
    ]


def _method_handler(
    servicer: TolokaGatewayServicer, method: MethodDescriptor, budget: RequestMemoryBudget
) -> grpc.RpcMethodHandler[Any, Any]:
    request_type: Any = message_factory.GetMessageClass(method.input_type)
    response_type: Any = message_factory.GetMessageClass(method.output_type)
    kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
    return kind(
        getattr(servicer, method.name),
        request_deserializer=RequestDecoder(request_type, budget),
        response_serializer=response_type.SerializeToString,
    )


def gateway_handlers(
    servicer: TolokaGatewayServicer, budget: RequestMemoryBudget
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The TolokaGateway methods the servicer implements, with a decoder that never raises.

    The generated registration would decode with `FromString`, whose errors gRPC answers with
    UNKNOWN before any handler (or authentication) runs. A method the servicer lacks stays
    UNIMPLEMENTED.
    """
    return {
        method.name: _method_handler(servicer, method, budget)
        for method in SERVICE.methods
        if hasattr(servicer, method.name)
    }


def build_server(
    *,
    servicer: TolokaGatewayServicer,
    auth: CallerAuth,
    settings: ServerSettings,
    metrics: GatewayMetrics | None = None,
    credentials: grpc.ServerCredentials | None = None,
    rls: RateLimitServicer | None = None,
) -> tuple[grpc.aio.Server, health_aio.HealthServicer, int]:
    """The server (not started), its health servicer, and the bound port.

    The servicer's methods run inside the `CallInterceptor` (auth, Call context, statuses, the
    call log and metrics); health, reflection and Envoy's rate-limit service (`rls`) do not.
    """
    interceptor = CallInterceptor(service_name=SERVICE_NAME, auth=auth, metrics=metrics)
    server = grpc.aio.server(options=server_options(settings), interceptors=(interceptor,))
    budget = RequestMemoryBudget(capacity_bytes=settings.max_inflight_request_bytes)
    if metrics is not None:
        metrics.watch_request_budget(budget)
    handlers = gateway_handlers(servicer, budget)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [
        SERVICE_NAME,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ]
    if rls is not None:
        add_to_server(rls, server)
        names.append(RLS_SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    if credentials is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    return server, health_servicer, port
