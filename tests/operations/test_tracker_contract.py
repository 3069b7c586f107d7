"""Behaviour every OperationTracker has, run against the in-process and the Redis tracker."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from gateway import errors
from gateway.call import Call
from tests.operations.conftest import SETTINGS, MakeTracker
from tests.operations.scripted_operations import TO_FAIL, TO_SUCCESS, ScriptedOperations, operation
from tests.support.clock import ManualClock

FOREVER_RUNNING = (("RUNNING", 40),)


def soon(seconds: float) -> float:
    return time.monotonic() + seconds


async def test_wait_returns_latest_running_state_when_until_passes(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(FOREVER_RUNNING)
    started = time.monotonic()
    op = await tracker.wait(op_id, until=started + 0.3, call=Call())
    elapsed = time.monotonic() - started
    assert (op["status"], op["progress"]) == ("RUNNING", 40)
    assert 0.28 <= elapsed < 1.0


async def test_wait_returns_at_call_deadline_when_it_is_before_until(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(FOREVER_RUNNING)
    started = time.monotonic()
    op = await tracker.wait(op_id, until=started + 5.0, call=Call(deadline=started + 0.25))
    assert op["status"] == "RUNNING"
    assert time.monotonic() - started < 1.0


async def test_wait_answers_known_final_state_without_reading_toloka(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(TO_SUCCESS)
    await tracker.remember(operation(op_id, "SUCCESS", 100))
    op = await tracker.wait(op_id, until=soon(5), call=Call())
    assert op["status"] == "SUCCESS"
    assert source.reads[op_id] == 0


async def test_wait_returns_final_state_once_operation_succeeds(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(TO_SUCCESS)
    op = await tracker.wait(op_id, until=soon(5), call=Call())
    assert (op["status"], op["progress"]) == ("SUCCESS", 100)
    assert source.reads[op_id] == len(TO_SUCCESS)
    again = await tracker.wait(op_id, until=soon(5), call=Call())
    assert again == op
    assert source.reads[op_id] == len(TO_SUCCESS)


async def test_wait_reports_fail_as_a_result_when_operation_fails(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(TO_FAIL)
    op = await tracker.wait(op_id, until=soon(5), call=Call())
    assert op["status"] == "FAIL"


async def test_wait_raises_not_found_when_first_read_says_so(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    with pytest.raises(errors.NotFound):
        await tracker.wait("no-such-operation", until=soon(5), call=Call())
    assert source.reads["no-such-operation"] == 1


async def test_wait_keeps_known_state_when_a_later_read_says_not_found(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    await tracker.remember(operation("just-created", "RUNNING", 10))
    op = await tracker.wait("just-created", until=soon(0.3), call=Call())
    assert (op["status"], op["progress"]) == ("RUNNING", 10)
    assert source.reads["just-created"] >= 2


async def test_concurrent_waiters_share_one_poll_loop_when_200_wait(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(TO_SUCCESS)
    results = await asyncio.gather(*(tracker.wait(op_id, until=soon(10), call=Call()) for _ in range(200)))
    assert {r["status"] for r in results} == {"SUCCESS"}
    assert source.reads[op_id] == len(TO_SUCCESS)
    assert tracker.waiters == 0


async def test_waiters_get_final_state_when_reads_fail_transiently(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(TO_SUCCESS)
    source.fail_next(
        errors.Unavailable("502 from Toloka"),
        errors.RateLimited("429 from Toloka"),
        errors.Unavailable("reset"),
    )
    results = await asyncio.gather(*(tracker.wait(op_id, until=soon(10), call=Call()) for _ in range(5)))
    assert {r["status"] for r in results} == {"SUCCESS"}
    assert source.reads[op_id] == len(TO_SUCCESS) + 3


async def test_wait_raises_last_error_when_nothing_is_known_by_the_deadline(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(TO_SUCCESS)
    source.fail_next(*(errors.Unavailable("Toloka is down") for _ in range(1000)))
    with pytest.raises(errors.Unavailable):
        await tracker.wait(op_id, until=soon(0.3), call=Call())


async def test_watch_yields_each_change_once_in_order_when_operation_moves(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    steps = (
        ("PENDING", 0),
        ("PENDING", 0),
        ("RUNNING", 10),
        ("RUNNING", 10),
        ("RUNNING", 60),
        ("SUCCESS", 100),
    )
    op_id = source.add(steps)
    seen = [(op["status"], op["progress"]) async for op in tracker.watch(op_id, call=Call(deadline=soon(10)))]
    assert seen == [("PENDING", 0), ("RUNNING", 10), ("RUNNING", 60), ("SUCCESS", 100)]
    assert source.reads[op_id] == len(steps)


async def test_watch_ends_at_call_deadline_when_operation_stays_running(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(FOREVER_RUNNING)
    started = time.monotonic()
    seen = [op["progress"] async for op in tracker.watch(op_id, call=Call(deadline=started + 0.3))]
    assert seen == [40]
    assert time.monotonic() - started < 1.0


async def test_wait_starts_from_remembered_state_when_nothing_was_polled_yet(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker(replace(SETTINGS, initial_interval_s=1.0))
    op_id = source.add(TO_SUCCESS)
    await tracker.remember(operation(op_id, "RUNNING", 5))
    op = await tracker.wait(op_id, until=soon(0.1), call=Call())
    assert (op["status"], op["progress"]) == ("RUNNING", 5)
    assert source.reads[op_id] == 0


async def test_get_shares_one_read_and_caches_it_when_fresh(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    clock = ManualClock()
    tracker = await make_tracker(clock=clock)
    op_id = source.add(FOREVER_RUNNING)
    ops = await asyncio.gather(*(tracker.get(op_id, call=Call()) for _ in range(50)))
    assert {o["status"] for o in ops} == {"RUNNING"}
    assert source.reads[op_id] == 1
    await clock.advance(SETTINGS.fresh_s / 2)
    await tracker.get(op_id, call=Call())
    assert source.reads[op_id] == 1
    await clock.advance(SETTINGS.fresh_s)
    await tracker.get(op_id, call=Call())
    assert source.reads[op_id] == 2


async def test_get_answers_final_state_from_cache_when_known(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    clock = ManualClock()
    tracker = await make_tracker(clock=clock)
    op_id = source.add(TO_SUCCESS)
    await tracker.remember(operation(op_id, "FAIL", 20))
    await clock.advance(SETTINGS.fresh_s * 100)
    assert (await tracker.get(op_id, call=Call()))["status"] == "FAIL"
    assert source.reads[op_id] == 0


async def test_get_raises_not_found_when_toloka_does_not_know_the_id(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    with pytest.raises(errors.NotFound):
        await tracker.get("no-such-operation", call=Call())


async def test_polling_stops_when_no_waiter_remains(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(FOREVER_RUNNING)
    await tracker.wait(op_id, until=soon(0.2), call=Call())
    stop_by = soon(SETTINGS.lease_s * 3)
    while tracker.active_pollers:
        assert time.monotonic() < stop_by, "the poll loop outlived its last waiter"
        await asyncio.sleep(0.005)
    reads = source.reads[op_id]
    # Real time on purpose: what is asserted is that no read happens over several real poll intervals.
    await asyncio.sleep(SETTINGS.max_interval_s * 3)
    assert source.reads[op_id] == reads


async def test_wait_reads_once_when_timeout_is_zero_and_nothing_is_known(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(FOREVER_RUNNING)  # never remembered here: created through another replica
    op = await tracker.wait(op_id, until=time.monotonic(), call=Call(deadline=soon(5)))
    assert (op["status"], op["progress"]) == ("RUNNING", 40)
    assert source.reads[op_id] == 1


async def test_wait_raises_not_found_when_timeout_is_zero_and_toloka_does_not_know_the_id(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    with pytest.raises(errors.NotFound):
        await tracker.wait("no-such-operation", until=time.monotonic(), call=Call(deadline=soon(5)))


async def test_waits_and_watches_return_latest_state_at_once_when_tracker_drains(
    make_tracker: MakeTracker, source: ScriptedOperations
) -> None:
    tracker = await make_tracker()
    op_id = source.add(FOREVER_RUNNING)
    waiter = asyncio.create_task(tracker.wait(op_id, until=soon(30), call=Call()))
    watched: list[int] = []

    async def watch() -> None:
        async for op in tracker.watch(op_id, call=Call(deadline=soon(30))):
            watched.append(op["progress"])

    watcher = asyncio.create_task(watch())
    while not (source.reads[op_id] and watched):  # noqa: ASYNC110 - bounded by the 1 s waits below
        await asyncio.sleep(0.005)
    await tracker.drain()
    op = await asyncio.wait_for(waiter, 1.0)
    assert (op["status"], op["progress"]) == ("RUNNING", 40)  # done=false: the latest state
    await asyncio.wait_for(watcher, 1.0)
    assert watched == [40]
    later = await asyncio.wait_for(tracker.wait(op_id, until=soon(30), call=Call()), 1.0)
    assert later["status"] == "RUNNING"
