"""The poll schedule: backoff, its cap, jitter, and the reset when an operation moves."""

from __future__ import annotations

import asyncio
import random

from gateway.call import Call
from gateway.operations import LocalOperationTracker
from gateway.operations.poll_schedule import PollSchedule
from gateway.settings import PollerSettings
from tests.operations.scripted_operations import ScriptedOperations, operation
from tests.support.clock import ManualClock


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_schedule_backs_off_to_the_cap_and_resets_when_changed() -> None:
    settings = PollerSettings(initial_interval_s=0.5, multiplier=2.0, max_interval_s=3.0, jitter=0.0)
    schedule = PollSchedule(settings=settings, rng=random.Random(1))
    delays = [schedule.first()] + [schedule.next(changed=False) for _ in range(4)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert schedule.next(changed=True) == 0.5
    assert schedule.next(changed=False) == 1.0


def test_schedule_jitter_stays_within_the_fraction_when_rng_is_extreme() -> None:
    settings = PollerSettings(initial_interval_s=1.0, multiplier=2.0, max_interval_s=8.0, jitter=0.2)
    assert PollSchedule(settings=settings, rng=FixedRandom(0.0)).first() == 0.8
    assert PollSchedule(settings=settings, rng=FixedRandom(1.0)).first() == 1.2
    schedule = PollSchedule(settings=settings, rng=random.Random(7))
    delays = [schedule.next(changed=False) for _ in range(50)]
    assert all(8.0 * 0.8 <= d <= 8.0 * 1.2 for d in delays[5:])
    assert len(set(delays)) > 1


async def test_poll_loop_backs_off_and_resets_when_progress_moves() -> None:
    clock = ManualClock()
    source = ScriptedOperations(clock=clock.now)
    settings = PollerSettings(initial_interval_s=1.0, multiplier=2.0, max_interval_s=4.0, jitter=0.0)
    tracker = LocalOperationTracker(settings=settings, fetch=source.fetch, clock=clock)
    steps = [("RUNNING", 10)] * 3 + [("RUNNING", 20)] * 2 + [("SUCCESS", 100)]
    op_id = source.add(steps)
    await tracker.remember(operation(op_id, "RUNNING", 10))
    start = clock.now()
    waiter = asyncio.create_task(tracker.wait(op_id, until=start + 100, call=Call(deadline=start + 100)))
    await clock.advance(30)
    assert (await waiter)["status"] == "SUCCESS"
    # first poll after the initial interval; 1 -> 2 -> 4 (cap) -> 4; progress moved -> 1; -> 2
    assert [t - start for t in source.read_times[op_id]] == [1, 3, 7, 11, 12, 14]
    await tracker.close()


async def test_waiter_gets_latest_state_at_until_on_manual_clock() -> None:
    clock = ManualClock()
    source = ScriptedOperations(clock=clock.now)
    settings = PollerSettings(initial_interval_s=1.0, multiplier=2.0, max_interval_s=4.0, jitter=0.0)
    tracker = LocalOperationTracker(settings=settings, fetch=source.fetch, clock=clock)
    op_id = source.add([("PENDING", 0), ("RUNNING", 30)])
    waiter = asyncio.create_task(tracker.wait(op_id, until=clock.now() + 5, call=Call()))
    await clock.advance(4.9)
    assert not waiter.done()
    await clock.advance(0.2)
    assert waiter.done()
    assert (await waiter)["progress"] == 30
    await clock.advance(10)
    assert tracker.active_pollers == 0
    await tracker.close()
