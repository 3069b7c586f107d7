"""Real gateways for tests: in-process on port 0, or as `python -m gateway serve` subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from gateway import settings as settings_mod
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.settings.tracing import tracing_from
from tests.support.redis_servers import free_port

FAST_TOLOKA = """
[toloka]
backoff_initial_s = 0.01
backoff_max_s = 0.05
request_timeout_s = 5
"""


def write_config(directory: Path, text: str = "") -> str:
    """A config file with fast retries plus `text`; returns its path."""
    path = directory / f"gateway-{time.monotonic_ns()}.toml"
    path.write_text(FAST_TOLOKA + text)
    return str(path)


@dataclass
class InProcessGateway:
    """A Gateway started in this event loop, with a channel and stub to it."""

    gateway: Gateway
    channel: grpc.aio.Channel
    stub: pb_grpc.TolokaGatewayStub
    caller: str = "tests"

    def md(self, caller: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("x-caller-id", caller or self.caller),)

    async def close(self) -> None:
        await self.channel.close()
        await self.gateway.stop(grace=1.0)


async def start_gateway(
    *, toloka_url: str, config_path: str, redis_url: str = "", env: Mapping[str, str] | None = None
) -> InProcessGateway:
    """Start a gateway in-process on 127.0.0.1 port 0."""
    full_env = {"TOLOKA_API_KEY": "test-key-not-secret", **(env or {})}
    s = settings_mod.load(
        env=full_env,
        config_path=config_path,
        listen="127.0.0.1:0",
        toloka_url=toloka_url,
        redis_url=redis_url,
    )
    gw = Gateway(s, tracing_settings=tracing_from(full_env))
    await gw.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}")
    return InProcessGateway(gateway=gw, channel=channel, stub=pb_grpc.TolokaGatewayStub(channel))


def rich_status(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The google.rpc details of a failed call, unpacked by type name."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    out: dict[str, Any] = {"code": error.code(), "message": error.details()}
    if status is None:
        return out
    kinds = {
        "google.rpc.ErrorInfo": error_details_pb2.ErrorInfo,
        "google.rpc.BadRequest": error_details_pb2.BadRequest,
        "google.rpc.RetryInfo": error_details_pb2.RetryInfo,
        "google.rpc.QuotaFailure": error_details_pb2.QuotaFailure,
    }
    for detail in status.details:
        cls = kinds.get(detail.TypeName())
        if cls is not None:
            msg = cls()
            detail.Unpack(msg)
            out[detail.TypeName().split(".")[-1]] = msg
    return out


def parse_status_bin(raw: bytes) -> status_pb2.Status:
    return status_pb2.Status.FromString(raw)


@dataclass
class GatewayProcess:
    """`python -m gateway serve` as a child process on a free port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "gateway", "serve"])

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> GatewayProcess:
        self.log_path = log_dir / f"gateway-{self.port}.log"
        # A short drain delay unless a test asks for another: no prober watches these processes.
        env = {**os.environ, "GATEWAY_SHUTDOWN_DELAY": "200ms", **self.env, "GATEWAY_LISTEN": self.target}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    async def wait_serving(self, within_s: float = 30.0) -> None:
        deadline = time.monotonic() + within_s
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.logs()
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"gateway on {self.target} not serving after {within_s}s: {self.logs()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""
