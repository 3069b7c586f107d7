"""Redis-only behaviour: round trips, memory per key, pub/sub wake-ups, degraded mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway import errors
from gateway.dedupe import FallbackDeduplicator, LocalDeduplicator, build_deduplicator
from gateway.settings import DedupeSettings
from gateway.shared_state import AnyRedis, SharedRedis, connect_redis
from tests.dedupe.conftest import Harness
from tests.dedupe.test_contract import Producer, call, op_id, until
from tests.support.redis_servers import RedisCluster, redis_server


class CommandCounter:
    """Counts the commands a client sends (each is one round trip; nothing is pipelined here)."""

    def __init__(self, client: AnyRedis) -> None:
        self.sent = 0
        original = client.execute_command

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.sent += 1
            return await original(*args, **kwargs)

        client.execute_command = counted  # type: ignore[method-assign]


@pytest.fixture(params=["redis", "cluster"])
async def redis_harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A harness on a standalone redis-server and on a Redis Cluster."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
    else:
        cluster: RedisCluster = request.getfixturevalue("redis_cluster_proc")
        url = cluster.url
    h = Harness(backend=request.param, url=url)
    yield h
    await h.aclose()


async def test_first_call_costs_two_round_trips_and_a_replay_one(redis_harness: Harness) -> None:
    store = redis_harness.make()
    counter = CommandCounter(redis_harness.clients[-1].redis)
    await store.run(op_id(), "fp", Producer(), call=call())  # loads the scripts once
    key = op_id()
    before = counter.sent
    await store.run(key, "fp", Producer(b"x" * 200), call=call())
    first = counter.sent - before
    before = counter.sent
    assert await store.run(key, "fp", Producer(), call=call()) == (b"x" * 200, True)
    assert (first, counter.sent - before) == (2, 1)


async def test_stored_outcome_costs_under_500_bytes_when_it_is_200_bytes(redis_url: str) -> None:
    shared = SharedRedis(connect_redis(redis_url))
    store = build_deduplicator(DedupeSettings(), shared)
    key = op_id()
    await store.run(key, "a-sha256-hex-fingerprint" * 3, Producer(bytes(range(200))), call=call())
    usage = await shared.redis.memory_usage(f"tgw:d:{key}")
    await store.close()
    await shared.close()
    assert usage is not None and usage <= 500


async def test_waiter_wakes_on_publish_when_holder_finishes_long_before_its_lease(
    redis_harness: Harness,
) -> None:
    holder_store = redis_harness.make(lease_s=30.0)
    waiter_store = redis_harness.replica(holder_store, lease_s=30.0)
    key, slow = op_id(), Producer(b"late", gate=asyncio.Event())
    holder = asyncio.create_task(holder_store.run(key, "fp", slow, call=call()))
    await until(lambda: slow.runs == 1)
    waiter = asyncio.create_task(waiter_store.run(key, "fp", Producer(), call=call()))
    # Real time on purpose: the waiter re-checks on the event loop's timer (no injected clock
    # reaches it), and what is measured is wall-clock wake-up latency. After 2.5 s a waiter that
    # polled instead of listening would be between 1 s polls and miss the 0.25 s bound below.
    await asyncio.sleep(2.5)
    assert slow.gate is not None
    slow.gate.set()
    released = time.monotonic()
    assert await waiter == (b"late", True)
    assert time.monotonic() - released < 0.25
    await holder


async def test_produce_runs_directly_when_redis_is_down_and_dedupe_returns_with_it() -> None:
    with redis_server() as server:
        shared = SharedRedis(connect_redis(server.url))
        store = build_deduplicator(DedupeSettings(), shared)
        assert isinstance(store, FallbackDeduplicator)
        key, produce = op_id(), Producer()
        assert await store.run(key, "fp", produce, call=call()) == (b"op-1", False)

        await asyncio.to_thread(server.stop)
        assert await store.run(key, "fp", produce, call=call()) == (b"op-1", False)
        assert store.degraded and produce.runs == 2
        started = time.monotonic()
        assert await store.run(key, "other-fp", produce, call=call()) == (b"op-1", False)
        assert time.monotonic() - started < 0.05  # degraded calls do not wait on Redis
        assert store.counters.bypassed == 2
        unrepeatable = Producer(sends=True)
        with pytest.raises(errors.Unavailable) as info:  # Toloka would not dedupe it: refused
            await store.run(op_id(), "fp", unrepeatable, call=call())
        assert info.value.reason == "SHARED_STATE_UNAVAILABLE" and info.value.retry_after
        assert (unrepeatable.runs, unrepeatable.sent) == (1, 0)

        await asyncio.to_thread(server.start)
        await until(lambda: not store.degraded, within_s=5.0)
        again = op_id()
        assert await store.run(again, "fp", produce, call=call()) == (b"op-1", False)
        assert await store.run(again, "fp", produce, call=call()) == (b"op-1", True)
        await store.close()
        await shared.close()


def test_factory_builds_in_process_store_when_no_redis_is_configured() -> None:
    assert isinstance(build_deduplicator(DedupeSettings(), None), LocalDeduplicator)


async def test_a_claim_is_bounded_by_the_callers_deadline_and_never_falls_back_to_running_produce(
    redis_url: str,
) -> None:
    shared = SharedRedis(connect_redis(redis_url))
    store = build_deduplicator(DedupeSettings(), shared)
    try:
        produce = Producer()
        with pytest.raises(errors.DeadlineExceeded):
            await store.run(op_id(), "fp", produce, call=call(deadline_s=-0.01))
        assert produce.runs == 0  # the wrapper did not take the caller's lost time for an outage
        assert not store.degraded and shared.health.trips == 0
        assert await store.run(op_id(), "fp", produce, call=call()) == (b"op-1", False)
    finally:
        await store.close()
        await shared.close()
