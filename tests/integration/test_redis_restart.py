"""Redis killed and restarted under load: limits hold (with persistence), and nothing is created twice.

Two gateway processes share one redis-server that keeps an append-only file (fsync on every write).
Callers flood them with creates, sync and async, every operation_id sent to both replicas at once;
mid-flood Redis is SIGKILLed and, a moment later, started again on the same port and data.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.support.gateway_harness import GatewayProcess, write_config
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.slow

CAPACITY, PERIOD_S, SHARE, REPLICAS = 30, 2.0, 0.34, 2
LOCAL = max(1, int(SHARE * CAPACITY))  # one replica's capacity while Redis is unreachable
CONFIG = f"""
[dedupe]
lease_s = 1.5
[rate_limits]
max_wait = "0s"
degraded_share = {SHARE}
limits = [{{ name = "creates", kinds = ["create_tasks"], capacity = {CAPACITY}, period = "{PERIOD_S}s" }}]
"""


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(EmulatorState(operation_duration_s=0)) as emu:
        yield emu


def request(operation_id: str, *, sync: bool) -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=operation_id, async_mode=not sync)
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": operation_id})
    return req


async def flood(
    stubs: list[pb_grpc.TolokaGatewayStub], stop: asyncio.Event, sent: list[str], refused: Counter[str]
) -> None:
    """Send creates until told to stop, each operation_id to every replica at once."""
    while not stop.is_set():
        op_id = str(uuid.uuid4())
        sent.append(op_id)
        req = request(op_id, sync=random.random() < 0.5)
        calls = [stub.CreateTasks(req, timeout=5) for stub in stubs]
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(outcome, grpc.aio.AioRpcError):
                refused[outcome.code().name] += 1
                # Refusals are expected (quota, Redis gone for a sync create); nothing else is.
                assert outcome.code() in (
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ), outcome
            elif isinstance(outcome, BaseException):
                raise outcome


def creates(emulator: EmulatorServer) -> list[float]:
    """When each create reached Toloka."""
    return [r.monotonic for r in emulator.state.requests if r.method == "POST" and r.path == "/api/v1/tasks"]


def most_in_any_window(times: list[float], length: float) -> int:
    """The most timestamps any half-open window of `length` holds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - length:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_limits_hold_and_nothing_is_created_twice_when_redis_is_killed_and_restarted(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    redis = RedisServer(extra_args=("--appendonly", "yes", "--appendfsync", "always")).start()
    env = {
        "TOLOKA_URL": emulator.url,
        "TOLOKA_API_KEY": "restart-key",
        "REDIS_URL": redis.url,
        "GATEWAY_CONFIG": write_config(tmp_path, CONFIG),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    procs = [GatewayProcess(env=dict(env)).start(tmp_path) for _ in range(REPLICAS)]
    channels = [grpc.aio.insecure_channel(p.target) for p in procs]
    stop, sent, refused = asyncio.Event(), [], Counter[str]()
    try:
        await asyncio.gather(*(p.wait_serving() for p in procs))
        stubs = [pb_grpc.TolokaGatewayStub(c) for c in channels]
        callers = [asyncio.create_task(flood(stubs, stop, sent, refused)) for _ in range(6)]
        # Kill Redis right after the flood has spent the whole limit, so the window that holds that
        # burst also holds the restart: a Redis that forgot the burst would admit it a second time.
        while len(creates(emulator)) < CAPACITY:  # noqa: ASYNC110 - the emulator log has no event hook
            await asyncio.sleep(0.005)
        await asyncio.to_thread(redis.stop)  # SIGKILL
        await asyncio.sleep(0.5)  # an outage, not synchronisation
        await asyncio.to_thread(redis.start)  # same port and data directory: the AOF is replayed
        await asyncio.sleep(3.0)  # load after recovery, over more than one period
        stop.set()
        await asyncio.gather(*callers)
    finally:
        stop.set()
        for channel in channels:
            await channel.close()
        for p in procs:
            p.stop()
        with contextlib.suppress(Exception):
            redis.stop()

    posts = creates(emulator)
    # The flood kept the limit saturated: far more was asked than it admits.
    assert refused["RESOURCE_EXHAUSTED"] > len(posts) and len(posts) >= CAPACITY, (refused, len(posts))
    # window.py's bound across an outage shorter than the period: C plus what each replica may have
    # admitted locally and not yet written back when Redis decided. A Redis that lost its counters in
    # the restart would allow up to another C on top. Arrival times at the emulator trail admission
    # times by a little jitter, so windows 50 ms shorter than the period are counted (never more).
    assert most_in_any_window(posts, PERIOD_S - 0.05) <= CAPACITY + REPLICAS * LOCAL
    emulator.state.advance()
    ours = set(sent)  # the emulator seeds a few tasks of its own
    created = Counter(
        image for t in emulator.state.tasks.values() if (image := str(t["input_values"]["image"])) in ours
    )
    assert created, "some creates must have gone through"
    assert max(created.values()) == 1, [op for op, n in created.items() if n > 1][:5]
