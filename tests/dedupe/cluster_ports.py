"""A Redis Cluster whose node ports leave room for the cluster bus (port + 10000 <= 65535).

`tests.support.redis_servers.free_port()` may return ports above 55535 (the kernel's ephemeral
range here ends at 60999); redis-server refuses cluster mode on those, so the shared fixture fails
at random. This picks ports below 55535 until the shared helper is fixed.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.redis_servers import RedisCluster, RedisServer


def low_free_port() -> int:
    """A TCP port below 55535 that was free a moment ago."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        with socket.socket() as s, socket.socket() as bus:
            try:
                s.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair below 55535")


@contextmanager
def low_port_cluster(masters: int = 3) -> Iterator[RedisCluster]:
    """A started three-master cluster on cluster-safe ports, killed on exit."""
    cluster = RedisCluster()
    try:
        for _ in range(masters):
            node = RedisServer(
                port=low_free_port(),
                extra_args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "2000"),
            )  # fmt: skip
            cluster.nodes.append(node.start())
        addrs = [f"127.0.0.1:{n.port}" for n in cluster.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not all("cluster_state:ok" in n.cli("cluster", "info") for n in cluster.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        yield cluster
    finally:
        cluster.stop()
