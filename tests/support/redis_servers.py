"""Real redis-server processes for tests: a standalone server and a three-master cluster.

Never mocked, never skipped: without `redis-server` on PATH the fixture fails and says how
to install it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = (
    "redis-server was not found on PATH. Install it (Debian/Ubuntu: `apt-get install redis-server`, "
    "macOS: `brew install redis`) or run `bash .ci/run`, which installs it."
)


# Test servers take ports below Linux's ephemeral range (32768-60999), so an outgoing connection
# of another suite cannot grab one between "free" and "bound".
_PORTS = (10_000, 31_999)


def free_port() -> int:
    """A TCP port below the ephemeral range that was free a moment ago on 127.0.0.1."""
    while True:
        port = random.randint(*_PORTS)
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port


CLUSTER_BUS_OFFSET = 10_000


def cluster_safe_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too, both below the ephemeral range."""
    while True:
        port = random.randint(_PORTS[0], _PORTS[1] - CLUSTER_BUS_OFFSET)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
        except OSError:
            continue
        return port


def _binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise RuntimeError(INSTALL_HINT)
    return path


def _wait_ping(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"redis-server on port {port} did not answer PING within {timeout}s")


@dataclass
class RedisServer:
    """One redis-server process on 127.0.0.1; can be stopped and started again on the same port."""

    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tgw-redis-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            _binary("redis-server"),
            "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir), "--protected-mode", "no", *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_ping(self.port)
        # Never share another suite's server (and its FLUSHALL): the process answering must be ours.
        if f"process_id:{self.process.pid}" not in self.cli("INFO", "server"):
            raise RuntimeError(f"redis-server could not bind port {self.port}; another server answers there")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [_binary("redis-cli"), "-p", str(self.port), *args], capture_output=True, check=True, timeout=30
        )
        return out.stdout.decode().strip()


@dataclass
class RedisCluster:
    """Three masters in one real Redis Cluster, created with `redis-cli --cluster create`."""

    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0?cluster=1"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.port) for n in self.nodes]

    def start(self, masters: int = 3) -> RedisCluster:
        for _ in range(masters):
            node = RedisServer(
                port=cluster_safe_port(),
                extra_args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "2000")
            )  # fmt: skip
            self.nodes.append(node.start())
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in n.cli("cluster", "info") for n in self.nodes):
                return self
            time.sleep(0.05)
        raise RuntimeError("Redis Cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


@contextmanager
def redis_server(*extra_args: str) -> Iterator[RedisServer]:
    """A started standalone server, killed on exit."""
    server = RedisServer(extra_args=extra_args).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def redis_cluster(masters: int = 3) -> Iterator[RedisCluster]:
    """A started cluster, killed on exit."""
    cluster = RedisCluster()
    try:
        yield cluster.start(masters)
    finally:
        cluster.stop()


def env_without_redis() -> dict[str, str]:
    """The current environment minus REDIS_URL, for gateway subprocesses that must choose their own."""
    return {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
