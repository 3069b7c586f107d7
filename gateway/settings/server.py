"""The `[server]` group: the gRPC listener (`--listen`, `--shutdown-delay` and their env vars)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.settings.parsing import apply_table, parse_duration


@dataclass(frozen=True)
class ServerSettings:
    """The gRPC listener."""

    listen: str = "[::]:50051"
    max_message_bytes: int = 64 * 1024 * 1024
    grace_s: float = 20.0
    # After SIGTERM, health says NOT_SERVING for this long (calls still accepted) so balancers and
    # meshes stop routing here before the listener closes. It should outlast the health checker's
    # interval x failure threshold plus propagation: 5 s covers a 2 s x 2 prober; the Helm chart
    # derives it from the readiness probe (env GATEWAY_SHUTDOWN_DELAY, flag --shutdown-delay).
    shutdown_delay_s: float = 5.0
    caller_metadata_key: str = "x-caller-id"
    max_tasks_per_request: int = 10_000
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    # Shortest interval between a client's pings that the listener tolerates. gRPC's own default (5 min)
    # answers GOAWAY too_many_pings to clients and meshes that keep long calls alive with 10-30 s pings.
    min_ping_interval_s: float = 10.0
    # Memory that requests in flight may hold together, charged before decoding (see rpc/request_budget.py).
    max_inflight_request_bytes: int = 512 * 1024 * 1024


def server_from(
    table: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    listen: str | None,
    shutdown_delay: str | None,
) -> ServerSettings:
    """ServerSettings from the `[server]` table, then env vars, then the flags."""
    server = apply_table(ServerSettings(), table, "server")
    server = replace(server, listen=listen or env.get("GATEWAY_LISTEN") or server.listen)
    delay = shutdown_delay or env.get("GATEWAY_SHUTDOWN_DELAY")
    if delay:
        name = "--shutdown-delay" if shutdown_delay else "GATEWAY_SHUTDOWN_DELAY"
        server = replace(server, shutdown_delay_s=parse_duration(delay, name=name))
    if env.get("GATEWAY_CALLER_METADATA_KEY"):
        server = replace(server, caller_metadata_key=env["GATEWAY_CALLER_METADATA_KEY"].lower())
    return server
