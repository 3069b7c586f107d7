"""Dedupe benchmark: round trips, replay latency and memory per key against a spawned redis-server.

python -m bench.dedupe_bench      # prints one JSON object
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gateway.call import Call
from gateway.dedupe import LocalDeduplicator, RedisDeduplicator
from gateway.dedupe.store import HeldClaim
from gateway.settings import DedupeSettings
from gateway.shared_state import AnyRedis, SharedRedis, connect_redis

REPLAYS = 2_000
OUTCOME = bytes(range(200))  # the size of a serialized async CreateTasks Operation


@contextmanager
def _redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found on PATH (Debian/Ubuntu: apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    workdir = tempfile.mkdtemp(prefix="tgw-bench-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


class _Counter:
    def __init__(self, client: AnyRedis) -> None:
        self.sent = 0
        original = client.execute_command

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.sent += 1
            return await original(*args, **kwargs)

        client.execute_command = counted  # type: ignore[method-assign]


async def _produce(_: HeldClaim) -> bytes:
    return OUTCOME


async def _produce_sent(claim: HeldClaim) -> bytes:
    """A synchronous create's produce: it marks its claim sent before its request would leave."""
    await claim.sending()
    return OUTCOME


def _summary(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    return {
        "median_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
    }


async def _timed_replays(store: Any, key: str) -> list[float]:
    samples: list[float] = []
    for _ in range(REPLAYS):
        started = time.perf_counter()
        _, replayed = await store.run(key, "fp", _produce, call=Call())
        samples.append(time.perf_counter() - started)
        assert replayed
    return samples


async def _redis_figures(url: str) -> dict[str, Any]:
    shared = SharedRedis(connect_redis(url))
    client = shared.redis
    store = RedisDeduplicator(shared=shared, settings=DedupeSettings())
    counter = _Counter(client)
    await store.run(str(uuid.uuid4()), "fp", _produce, call=Call())  # loads the scripts
    key = f"tasks:{uuid.uuid4()}"  # as the service namespaces CreateTasks keys
    before = counter.sent
    await store.run(key, "fp", _produce, call=Call())
    first_round_trips = counter.sent - before
    before = counter.sent
    await store.run(key, "fp", _produce, call=Call())
    replay_round_trips = counter.sent - before

    # Interleaved, so load from other processes on the box hits both series alike.
    pings: list[float] = []
    replays: list[float] = []
    for _ in range(REPLAYS):
        started = time.perf_counter()
        await client.ping()
        pings.append(time.perf_counter() - started)
        started = time.perf_counter()
        _, replayed = await store.run(key, "fp", _produce, call=Call())
        replays.append(time.perf_counter() - started)
        assert replayed
    await store.run(str(uuid.uuid4()), "fp", _produce_sent, call=Call())  # loads the mark script
    before = counter.sent
    await store.run(f"tasks:{uuid.uuid4()}", "fp", _produce_sent, call=Call())
    sync_first_round_trips = counter.sent - before
    # Async (claim, store) and sync (claim, mark sent, store) first calls, interleaved.
    firsts, sync_firsts = [], []
    for _ in range(500):
        for produce, samples in ((_produce, firsts), (_produce_sent, sync_firsts)):
            started = time.perf_counter()
            await store.run(str(uuid.uuid4()), "fp", produce, call=Call())
            samples.append(time.perf_counter() - started)
    memory = await client.memory_usage(f"tgw:d:{key}")
    replay, ping = _summary(replays), _summary(pings)
    await store.close()
    await shared.close()
    return {
        "first_call_round_trips": first_round_trips,
        "replay_round_trips": replay_round_trips,
        "replay_latency": replay,
        "replay_added_over_bare_ping_median_us": round(replay["median_us"] - ping["median_us"], 1),
        "first_call_latency_500": _summary(firsts),
        "sync_first_call_round_trips": sync_first_round_trips,
        "sync_first_call_latency_500": _summary(sync_firsts),
        "sync_over_async_first_call_median_ratio": round(
            statistics.median(sync_firsts) / statistics.median(firsts), 2
        ),
        "ping_latency_reference": ping,
        "memory_usage_bytes_200b_outcome": memory,
        "key_example": f"tgw:d:{key}",
    }


async def _local_figures() -> dict[str, Any]:
    store = LocalDeduplicator(settings=DedupeSettings())
    key = str(uuid.uuid4())
    await store.run(key, "fp", _produce, call=Call())
    return {"replay_latency": _summary(await _timed_replays(store, key))}


def run() -> dict[str, Any]:
    """Measure the Redis and in-process deduplicators; returns the figures as a dict."""
    with _redis_server() as url:
        redis_figures = asyncio.run(_redis_figures(url))
    return {"redis": redis_figures, "local": asyncio.run(_local_figures()), "replays": REPLAYS}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
