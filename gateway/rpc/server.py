"""Builds the grpc.aio server: the gateway service, health, reflection, limits and keepalive."""

from __future__ import annotations

import grpc
from grpc_health.v1 import _async as health_aio  # published as grpc_health.v1.health.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.rpc.servicer import TolokaGatewayServicer
from gateway.settings import ServerSettings

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TolokaGateway"].full_name


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """Channel options: message size for 10,000-task requests; keepalive a service mesh tolerates."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        # Rotate long-lived connections so new replicas get traffic behind L4 balancers.
        ("grpc.max_connection_age_ms", 30 * 60 * 1000),
        ("grpc.max_connection_age_grace_ms", int(settings.grace_s * 1000)),
    ]


def build_server(
    *,
    servicer: TolokaGatewayServicer,
    settings: ServerSettings,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, health_aio.HealthServicer, int]:
    """The server (not started), its health servicer, and the bound port."""
    server = grpc.aio.server(options=server_options(settings))
    pb_grpc.add_TolokaGatewayServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    if credentials is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    return server, health_servicer, port
