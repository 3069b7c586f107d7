"""The standalone emulator keeps Python's collector off its stored tasks (gc.freeze), and hands them back after a reset."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.emulator.heap import StateFreezer
from gateway.emulator.state import EmulatorState
from gateway.emulator.tasks import store_tasks


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # this test process is not the emulator's own


def store(state: EmulatorState, count: int) -> None:
    store_tasks(state, [({"pool_id": "1", "input_values": {"n": n}}, 1) for n in range(count)])


def test_stored_tasks_are_frozen_every_n_and_handed_back_after_a_reset(unfrozen: None) -> None:
    state = EmulatorState(seed_default_pools=False)
    state.work_hooks.append(StateFreezer(state, every=100).work_changed)
    store(state, 99)
    assert gc.get_freeze_count() == 0  # not yet 100 more
    store(state, 1)
    frozen = gc.get_freeze_count()
    assert frozen > 0
    store(state, 99)
    assert gc.get_freeze_count() == frozen
    state.reset()
    store(state, 1)  # the freezer sees the state shrank: what it froze goes back to the collector
    assert gc.get_freeze_count() == 0
