"""Poller benchmark: upstream reads per second as waiters grow, and Redis memory per final state.

Three RedisOperationTracker replicas share a spawned redis-server; N waiters (spread over them)
wait on one operation that stays RUNNING for a fixed interval, then succeeds. The target is a
flat read rate: one poll loop's schedule, whatever N is.

    python bench/poller_bench.py        # prints JSON
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.call import Call
from gateway.operations import RedisOperationTracker
from gateway.settings import PollerSettings
from gateway.shared_state import SharedRedis, connect_redis
from tests.support.redis_servers import redis_server

SETTINGS = PollerSettings(
    initial_interval_s=0.05, max_interval_s=0.25, multiplier=1.6, jitter=0.2, lease_s=1.0, key_prefix="bench"
)
INTERVAL_S = 3.0
WAITERS = (1, 100, 1000)
REPLICAS = 3


class HeldOperation:
    """An operation that stays RUNNING until `finish()`; counts reads."""

    def __init__(self) -> None:
        self.id = str(uuid.uuid4())
        self.reads = 0
        self.done = False

    def state(self) -> dict[str, Any]:
        status, progress = ("SUCCESS", 100) if self.done else ("RUNNING", 50)
        op: dict[str, Any] = {
            "id": self.id,
            "type": "TASK.BATCH_CREATE",
            "status": status,
            "progress": progress,
            "submitted": "2024-05-01T10:00:00.000",
            "started": "2024-05-01T10:00:00.500",
            "parameters": {"skip_invalid_items": False, "allow_defaults": False, "open_pool": True},
        }
        if self.done:
            op["finished"] = "2024-05-01T10:10:00.000"
            op["details"] = {"total_count": 10000, "valid_count": 10000, "not_valid_count": 0,
                             "success_count": 10000, "failed_count": 0}  # fmt: skip
        return op

    async def fetch(self, op_id: str, call: Call) -> dict[str, Any]:
        self.reads += 1
        return self.state()


async def _one_round(url: str, waiters: int) -> dict[str, Any]:
    op = HeldOperation()
    clients = [SharedRedis(connect_redis(url)) for _ in range(REPLICAS)]
    replicas = [RedisOperationTracker(settings=SETTINGS, shared=c, fetch=op.fetch) for c in clients]
    try:
        started = time.monotonic()
        tasks = [
            asyncio.create_task(replicas[i % REPLICAS].wait(op.id, until=started + 60, call=Call()))
            for i in range(waiters)
        ]
        await asyncio.sleep(INTERVAL_S)
        reads = op.reads
        op.done = True
        flipped = time.monotonic()
        results = await asyncio.gather(*tasks)
        all_final = time.monotonic() - flipped
        assert all(r["status"] == "SUCCESS" for r in results)
        return {
            "waiters": waiters,
            "interval_s": INTERVAL_S,
            "upstream_reads": reads,
            "reads_per_s": round(reads / INTERVAL_S, 2),
            "all_waiters_final_after_s": round(all_final, 3),
        }
    finally:
        for r in replicas:
            await r.close()
        for c in clients:
            await c.close()


async def _memory(url: str) -> dict[str, Any]:
    op = HeldOperation()
    op.done = True
    shared = SharedRedis(connect_redis(url))
    client = shared.redis
    tracker = RedisOperationTracker(settings=SETTINGS, shared=shared, fetch=op.fetch)
    try:
        await tracker.remember(op.state())
        usage = await client.memory_usage(f"{SETTINGS.key_prefix}:op:{{{op.id}}}")
        return {"final_state_json_bytes": len(json.dumps(op.state(), separators=(",", ":"))),
                "final_state_memory_usage_bytes": usage}  # fmt: skip
    finally:
        await tracker.close()
        await shared.close()


async def _run(url: str) -> dict[str, Any]:
    rounds = [await _one_round(url, n) for n in WAITERS]
    return {
        "replicas": REPLICAS,
        "settings": {"initial_interval_s": SETTINGS.initial_interval_s, "max_interval_s": SETTINGS.max_interval_s,
                     "multiplier": SETTINGS.multiplier, "jitter": SETTINGS.jitter, "lease_s": SETTINGS.lease_s},
        "rounds": rounds,
        **(await _memory(url)),
    }  # fmt: skip


def run() -> dict[str, Any]:
    """Run the benchmark on a freshly spawned redis-server and return the figures."""
    with redis_server() as server:
        return asyncio.run(_run(server.url))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
