"""A real Envoy as the mesh's egress proxy to Toloka, its HTTP rate-limit filter calling the gateway.

The config is the one docs/operating.md shows ("Mesh-side enforcement"), on free ports: every
request to Toloka is described by its request kind (from method and path), its caller (the
`x-caller-id` header, when present) and its Toloka account (the `x-toloka-account` header, when
present); the filter asks the gateway's ShouldRateLimit, denies when the
service cannot be asked (`failure_mode_deny`), and answers 429 when it says OVER_LIMIT.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.envoy import envoy_binary, stop_envoy
from tests.support.redis_servers import free_port

KIND_ROUTES = (  # (method, path prefix, request kind); the last one matches everything else
    ("POST", "/api/v1/tasks", "create_tasks"),
    ("GET", "/api/v1/pools/", "get_pool"),
    (None, "/", "other"),
)
# The caller says how many tasks a request carries; the rate-limit service spends them in tasks.
TASKS_HEADER = "x-toloka-tasks"
# The Toloka account whose limits a request spends (descriptor entry `account`); absent: the default.
ACCOUNT_HEADER = "x-toloka-account"


def _cluster(name: str, port: int, *, http2: bool) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": port}}}}]}
            ],
        },
    }  # fmt: skip
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def _route(method: str | None, prefix: str, kind: str) -> dict[str, Any]:
    match: dict[str, Any] = {"prefix": prefix}
    if method is not None:
        match["headers"] = [{"name": ":method", "string_match": {"exact": method}}]
    actions = [
        {"generic_key": {"descriptor_key": "kind", "descriptor_value": kind}},
        {
            "request_headers": {
                "header_name": "x-caller-id",
                "descriptor_key": "caller",
                "skip_if_absent": True,
            }
        },
        {
            "request_headers": {
                "header_name": ACCOUNT_HEADER,
                "descriptor_key": "account",
                "skip_if_absent": True,
            }
        },
    ]
    rate_limit: dict[str, Any] = {"actions": actions}
    if kind == "create_tasks":
        rate_limit["hits_addend"] = {"format": f"%REQ({TASKS_HEADER})%"}
    # Per-route filter config: the form whose descriptors can carry a hits_addend.
    per_route = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute",
        "rate_limits": [rate_limit],
    }
    return {
        "match": match,
        "route": {"cluster": "toloka"},
        "typed_per_filter_config": {"envoy.filters.http.ratelimit": per_route},
    }


def _rate_limit_filter(domain: str, timeout_s: float) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
            "domain": domain,
            "timeout": f"{timeout_s:.3f}s",
            "failure_mode_deny": True,
            "rate_limit_service": {
                "grpc_service": {"envoy_grpc": {"cluster_name": "toloka_gateway_rls"}},
                "transport_api_version": "V3",
            },
        },
    }


@dataclass
class EgressEnvoy:
    """One Envoy: HTTP on `port` to the Toloka at `toloka_port`, limits from the gateway at `rls_port`."""

    toloka_port: int
    rls_port: int
    domain: str = "toloka"
    timeout_s: float = 0.020
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        manager = {
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "egress",
                "route_config": {
                    "virtual_hosts": [
                        {"name": "toloka", "domains": ["*"], "routes": [_route(*r) for r in KIND_ROUTES]}
                    ]
                },
                "http_filters": [
                    _rate_limit_filter(self.domain, self.timeout_s),
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                        },
                    },
                ],
            },
        }
        listener = {
            "name": "egress",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": self.port}},
            "filter_chains": [{"filters": [manager]}],
        }
        return {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}},
            "static_resources": {
                "listeners": [listener],
                "clusters": [
                    _cluster("toloka", self.toloka_port, http2=False),
                    _cluster("toloka_gateway_rls", self.rls_port, http2=True),
                ],
            },
        }

    def start(self, directory: Path) -> EgressEnvoy:
        """Write the config into `directory` and start Envoy; its log goes to `directory/envoy.log`."""
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "envoy-egress.json"
        config.write_text(json.dumps(self.config(), indent=1))
        self.log_path = directory / "envoy.log"
        args = [str(envoy_binary()), "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
                "--log-level", "warning"]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        return self

    async def wait_ready(self, within_s: float = 20.0) -> None:
        """Until the admin interface says LIVE (the listener is bound then)."""
        deadline = time.monotonic() + within_s
        timeout = aiohttp.ClientTimeout(total=1)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, (
                    f"envoy exited:\n{self.logs()}"
                )
                try:
                    async with http.get(f"http://127.0.0.1:{self.admin_port}/ready") as reply:
                        if reply.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"envoy not ready:\n{self.logs()}")

    async def stats(self, prefix: str) -> dict[str, int]:
        """Envoy's counters whose names start with `prefix`."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.admin_port}/stats?filter=^{prefix}") as reply,
        ):
            text = await reply.text()
        found = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                found[name] = int(value)
        return found

    def stop(self) -> None:
        stop_envoy(self.process)

    def logs(self) -> str:
        return (
            self.log_path.read_text(errors="replace")[-4000:]
            if self.log_path and self.log_path.exists()
            else ""
        )
