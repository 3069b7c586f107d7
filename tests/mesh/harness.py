"""The mesh under test: an emulator process, gateway replicas on one Redis, and a real Envoy in front."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.support.envoy import CALL_HEADER, Envoy
from tests.support.gateway_harness import GatewayProcess
from tests.support.redis_servers import free_port

API_KEY = "mesh-key-not-secret"
CALLER = "mesh-tests"

# A caller whose own quota is one CreateTasks an hour: its refusals are what quota tests send through Envoy.
TIGHT_CALLER = "quota-tight"
SHUTDOWN_DELAY = "2s"
OPERATION_DURATION_S = 0.3

# Defaults everywhere else (dedupe and poller leases included): the mesh meets what a deployment gets.
# The global limit is generous and stated, so only TIGHT_CALLER is ever refused. The drain delay
# (SHUTDOWN_DELAY, env GATEWAY_SHUTDOWN_DELAY) is twice Envoy's health-check interval.
MESH_CONFIG = f"""
[server]
grace_s = "10s"

[rate_limits]
max_wait = "0s"
limits = [
  {{name = "create_tasks_per_minute", kinds = ["create_tasks"], capacity = 1000000, period = "1m", unit = "tasks"}},
]

[[rate_limits.callers.{TIGHT_CALLER}]]
name = "tight_create_tasks_per_hour"
kinds = ["create_tasks"]
capacity = 1
period = "1h"
"""


@dataclass
class EmulatorProcess:
    """`python -m gateway emulator` as a child process on a free port (replicas reach it over HTTP)."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, directory: Path, within_s: float = 20.0) -> EmulatorProcess:
        """Start it and wait until its control API answers."""
        self.log_path = directory / "emulator.log"
        command = [sys.executable, "-m", "gateway", "emulator", "--listen", f"127.0.0.1:{self.port}"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"emulator exited: {self.logs()}"
            try:
                with urllib.request.urlopen(f"{self.url}/_emulator/config", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"emulator on {self.url} did not answer within {within_s}s: {self.logs()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


class EmulatorControl:
    """The emulator's control API (`/_emulator/...`) and the Toloka reads the tests check outcomes with."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self._http = http
        self._auth = {"Authorization": f"ApiKey {API_KEY}"}

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._http.request(method, f"{self.url}{path}", **kwargs) as reply:
            body = await reply.json(content_type=None)
            assert reply.status < 300, f"{method} {path}: {reply.status} {body}"
            return body

    async def add_fault(self, **fault: Any) -> None:
        """Inject a fault (keys of `gateway.emulator.faults.Fault`)."""
        await self._json("POST", "/_emulator/faults", json=fault)

    async def clear_faults(self) -> None:
        await self._json("DELETE", "/_emulator/faults")

    async def configure(self, **knobs: Any) -> None:
        """Set emulator knobs such as `operation_duration_s` (applies to operations created afterwards)."""
        await self._json("POST", "/_emulator/config", json=knobs)

    async def new_pool(self) -> str:
        """A fresh empty pool, so a test counts only its own tasks."""
        pool = await self._json("POST", "/_emulator/pools", json={})
        return str(pool["id"])

    async def posts(self, operation_id: str) -> int:
        """POST /api/v1/tasks requests that carried this operation_id."""
        log = await self._json(
            "GET", "/_emulator/requests", params={"method": "POST", "path": "/api/v1/tasks"}
        )
        return sum(1 for r in log if r["path"] == "/api/v1/tasks" and r["operation_id"] == operation_id)

    async def wait_posted(self, operation_id: str, within_s: float = 10.0) -> None:
        """Wait until a POST carrying the operation_id reached Toloka (the request log has no event hook)."""
        deadline = time.monotonic() + within_s
        while await self.posts(operation_id) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no POST of operation_id {operation_id} within {within_s}s")
            await asyncio.sleep(0.05)

    async def tasks(self, pool_id: str) -> list[dict[str, Any]]:
        """Every task Toloka holds in the pool."""
        params = {"pool_id": pool_id, "limit": "10000"}
        body = await self._json("GET", "/api/v1/tasks", params=params, headers=self._auth)
        return list(body["items"])

    async def operation_status(self, operation_id: str) -> str | None:
        """Toloka's status of the operation, None when Toloka does not know it."""
        path = f"{self.url}/api/v1/operations/{operation_id}"
        async with self._http.get(path, headers=self._auth) as reply:
            if reply.status == 404:
                return None
            body = await reply.json(content_type=None)
            assert reply.status == 200, body
            return str(body["status"])


@dataclass
class Fleet:
    """Gateway replicas as processes on fixed ports, so a stopped one comes back where Envoy expects it."""

    env: dict[str, str]
    log_dir: Path
    size: int = 3
    replicas: list[GatewayProcess] = field(default_factory=list)
    generation: int = 0

    @property
    def targets(self) -> list[str]:
        return [r.target for r in self.replicas]

    def start(self) -> Fleet:
        self.replicas = [self._launch(GatewayProcess(env=dict(self.env))) for _ in range(self.size)]
        for replica in self.replicas:
            wait_serving(replica)
        return self

    def revive(self) -> None:
        """Start again, on their ports, the replicas a previous test stopped or killed."""
        dead = [i for i, r in enumerate(self.replicas) if r.process is None or r.process.poll() is not None]
        if not dead:
            return
        self.generation += 1
        for i in dead:
            self.replicas[i] = self._launch(GatewayProcess(env=dict(self.env), port=self.replicas[i].port))
        for i in dead:
            wait_serving(self.replicas[i])

    def _launch(self, replica: GatewayProcess) -> GatewayProcess:
        directory = self.log_dir / f"generation-{self.generation}"
        directory.mkdir(parents=True, exist_ok=True)
        return replica.start(directory)

    def index_of(self, upstream: str) -> int:
        return self.targets.index(upstream)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def logs(self, last_lines: int = 15) -> str:
        parts = []
        for i, replica in enumerate(self.replicas):
            lines = replica.logs().splitlines()[-last_lines:]
            parts.append(f"--- replica {i} ({replica.target}) ---\n" + "\n".join(lines))
        return "\n".join(parts)


def wait_serving(replica: GatewayProcess, within_s: float = 30.0) -> None:
    """Block until the replica's health service says SERVING (used from synchronous fixtures)."""
    deadline = time.monotonic() + within_s
    with grpc.insecure_channel(replica.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert replica.process is not None and replica.process.poll() is None, replica.logs()
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"replica {replica.target} not serving after {within_s}s: {replica.logs()}")


@dataclass
class Mesh:
    """Envoy in front of the fleet, a gRPC stub to Envoy, and the emulator behind the fleet."""

    envoy: Envoy
    fleet: Fleet
    emulator: EmulatorControl
    stub: pb_grpc.TolokaGatewayStub

    async def counters(self) -> dict[str, int]:
        """Envoy's counters of the gateway cluster (`upstream_rq_retry`, `upstream_rq_total`, ...)."""
        return await self.envoy.stats()

    def diagnostics(self) -> str:
        """Envoy's log and the replicas' last log lines, for assertion messages."""
        return f"{self.envoy.logs()}\n{self.fleet.logs()}"


def metadata(caller: str = CALLER, call: str | None = None) -> tuple[tuple[str, str], ...]:
    """Call metadata: the caller id and, when given, the tag Envoy's upstream log records."""
    md: tuple[tuple[str, str], ...] = (("x-caller-id", caller),)
    return (*md, (CALL_HEADER, call)) if call else md


def create_request(
    pool_id: str, operation_id: str, *, tasks: int = 1, async_mode: bool | None = None
) -> pb.CreateTasksRequest:
    """A CreateTasks request whose tasks carry their operation_id, so the pool can be counted per id."""
    request = pb.CreateTasksRequest(operation_id=operation_id)
    if async_mode is not None:
        request.async_mode = async_mode
    for n in range(tasks):
        task = request.tasks.add(pool_id=pool_id, overlap=1)
        task.input_values.update({"operation": operation_id, "n": n})
    return request


class Tally:
    """A count that coroutines can wait on (`await tally.reaches(n)`)."""

    def __init__(self) -> None:
        self.value = 0
        self._changed = asyncio.Condition()

    async def add(self, n: int = 1) -> None:
        async with self._changed:
            self.value += n
            self._changed.notify_all()

    async def reaches(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.value >= n)
