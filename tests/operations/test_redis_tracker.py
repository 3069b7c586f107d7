"""Fleet behaviour of the Redis tracker: one loop across replicas, takeover, memory, degradation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from gateway.call import Call
from gateway.operations import RedisOperationTracker, build_operation_tracker
from gateway.operations.local_tracker import LocalOperationTracker
from gateway.shared_state import SharedRedis, connect_redis
from tests.operations.conftest import SETTINGS, MakeTracker
from tests.operations.scripted_operations import TO_SUCCESS, ScriptedOperations, operation
from tests.support.redis_servers import redis_server

SLOW_SUCCESS = (*(("RUNNING", p) for p in range(0, 100, 4)), ("SUCCESS", 100))


def soon(seconds: float) -> float:
    return time.monotonic() + seconds


async def _until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_replicas_share_one_poll_loop_when_each_has_waiters(
    make_replica: MakeTracker, source: ScriptedOperations
) -> None:
    replicas = [await make_replica() for _ in range(3)]
    op_id = source.add(SLOW_SUCCESS)
    waits = [r.wait(op_id, until=soon(15), call=Call()) for r in replicas for _ in range(20)]
    results = await asyncio.gather(*waits)
    assert {r["status"] for r in results} == {"SUCCESS"}
    assert source.reads[op_id] == len(SLOW_SUCCESS)
    assert sum(r.lease_acquisitions for r in replicas) == 1


async def test_other_replica_answers_final_state_from_redis_without_reading_toloka(
    make_replica: MakeTracker, source: ScriptedOperations
) -> None:
    first, second = await make_replica(), await make_replica()
    op_id = source.add(TO_SUCCESS)
    assert (await first.wait(op_id, until=soon(5), call=Call()))["status"] == "SUCCESS"
    reads = source.reads[op_id]
    assert (await second.wait(op_id, until=soon(5), call=Call()))["status"] == "SUCCESS"
    assert (await second.get(op_id, call=Call()))["status"] == "SUCCESS"
    assert source.reads[op_id] == reads


async def test_waiters_everywhere_get_final_state_when_lease_holder_dies(
    make_replica: MakeTracker, source: ScriptedOperations
) -> None:
    replicas: list[RedisOperationTracker] = [await make_replica() for _ in range(3)]
    op_id = source.add(SLOW_SUCCESS)
    waits = {
        r: [asyncio.create_task(r.wait(op_id, until=soon(15), call=Call())) for _ in range(5)]
        for r in replicas
    }
    await _until(lambda: source.reads[op_id] >= 5)
    holder = next(r for r in replicas if r.active_pollers == 1)
    await holder.abandon()  # no lease release: a crash
    for task in waits[holder]:
        task.cancel()
    died = time.monotonic()
    reads_at_death = source.reads[op_id]
    await _until(lambda: source.reads[op_id] > reads_at_death)
    takeover = source.read_times[op_id][reads_at_death] - died
    survivors = [t for r in replicas if r is not holder for t in waits[r]]
    results = await asyncio.gather(*survivors)
    assert {r["status"] for r in results} == {"SUCCESS"}
    assert takeover <= SETTINGS.lease_s + SETTINGS.initial_interval_s * 1.2 + 0.05
    assert source.reads[op_id] <= len(SLOW_SUCCESS) + 1
    assert sum(r.active_pollers for r in replicas) == 0


async def test_final_state_is_one_small_key_when_operation_is_done(
    make_replica: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_replica()
    op_id = source.add(TO_SUCCESS)
    await tracker.wait(op_id, until=soon(5), call=Call())
    await asyncio.sleep(SETTINGS.lease_s * 2)
    key = f"{SETTINGS.key_prefix}:op:{{{op_id}}}"
    probe = connect_redis(make_replica.url)  # type: ignore[attr-defined]
    try:
        leftovers = await probe.exists(f"{key}:lease") + await probe.exists(f"{key}:waiters")
        usage = await probe.memory_usage(key)
        ttl = await probe.ttl(key)
    finally:
        await probe.aclose()
    assert leftovers == 0
    assert usage is not None
    assert usage <= 1024, f"MEMORY USAGE {usage} bytes"
    assert SETTINGS.final_retention_s - 5 <= ttl <= SETTINGS.final_retention_s


async def test_tracker_degrades_to_local_polling_and_recovers_when_redis_goes_and_returns(
    source: ScriptedOperations,
) -> None:
    with redis_server() as server:
        shared = SharedRedis(connect_redis(server.url, socket_timeout=0.5, socket_connect_timeout=0.5))
        tracker = RedisOperationTracker(settings=SETTINGS, shared=shared, fetch=source.fetch)
        try:
            op_id = source.add(SLOW_SUCCESS)
            waiter = asyncio.create_task(tracker.wait(op_id, until=soon(15), call=Call()))
            await _until(lambda: source.reads[op_id] >= 3)
            server.stop()
            await _until(lambda: tracker.degraded)
            assert (await waiter)["status"] == "SUCCESS"
            server.start()
            second = source.add(TO_SUCCESS)
            assert (await tracker.wait(second, until=soon(10), call=Call()))["status"] == "SUCCESS"
            await _until(lambda: not tracker.degraded)
        finally:
            await tracker.close()
            await shared.close()


async def test_factory_picks_the_backend_when_redis_is_given_or_not(
    redis_url: str, source: ScriptedOperations
) -> None:
    assert isinstance(build_operation_tracker(SETTINGS, None, source.fetch), LocalOperationTracker)
    shared = SharedRedis(connect_redis(redis_url))
    try:
        tracker = build_operation_tracker(SETTINGS, shared, source.fetch)
        assert isinstance(tracker, RedisOperationTracker)
        await tracker.close()
    finally:
        await shared.close()


@pytest.mark.parametrize("replicas", [3])
async def test_not_found_reaches_waiters_on_every_replica(
    make_replica: MakeTracker, source: ScriptedOperations, replicas: int
) -> None:
    trackers = [await make_replica() for _ in range(replicas)]
    outcomes = await asyncio.gather(
        *(t.wait("never-created", until=soon(5), call=Call()) for t in trackers), return_exceptions=True
    )
    assert all(type(o).__name__ == "NotFound" for o in outcomes), outcomes
    assert source.reads["never-created"] == 1


async def test_pools_recorded_on_one_replica_are_known_to_another_when_they_share_redis(
    make_replica: MakeTracker, source: ScriptedOperations
) -> None:
    creator, reader = await make_replica(), await make_replica()
    op_id = source.add(TO_SUCCESS)
    assert await reader.pools_of(op_id) is None
    await creator.remember(operation(op_id, "RUNNING", 0), pools={"7", "8"})
    assert await reader.pools_of(op_id) == frozenset({"7", "8"})
    assert await creator.pools_of(op_id) == frozenset({"7", "8"})
