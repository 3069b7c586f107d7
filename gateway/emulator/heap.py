"""Keeping Python's cyclic garbage collector off the emulator's stored state, in a process the
emulator owns (`toloka-gateway emulator`).

The emulator keeps everything it is given until a reset: a million tasks are a few million dicts,
and every collection of the oldest generation walks all of them again. Measured on the import
benchmark (200,000 tasks each way), those full collections were 1.8 s of the emulator's 3.2 s of
CPU. What a collection of the young generations leaves is the stored state, so each time the state
has grown by `every` tasks, `StateFreezer` collects the young generations and moves every tracked
object out of the collector's sight (`gc.freeze`): later collections walk only what came since.
Frozen objects are still freed by reference counting when the state drops them; after a reset
they are handed back to the collector (`gc.unfreeze`), so cycles among them are collected too.

`gc.freeze` is process-wide, so only the emulator's own process installs this: an emulator inside
a test or a gateway process leaves its host's collector alone.
"""

from __future__ import annotations

import gc

from gateway.emulator.state import EmulatorState

FREEZE_EVERY = 10_000  # stored tasks between two freezes


class StateFreezer:
    """A work hook of the state: freezes the heap each time `every` more tasks are stored."""

    def __init__(self, state: EmulatorState, every: int = FREEZE_EVERY) -> None:
        self._state = state
        self._every = every
        self._frozen_at = 0

    def work_changed(self, pool_id: str, unit_id: str | None = None) -> None:
        """Called after tasks are stored (and whenever a pool's work changes)."""
        stored = len(self._state.tasks) + len(self._state.suites)
        if stored < self._frozen_at:  # a reset dropped what was frozen
            gc.unfreeze()
            self._frozen_at = 0
        if stored - self._frozen_at >= self._every:
            gc.collect(1)
            gc.freeze()
            self._frozen_at = stored


def keep_collector_off_stored_state(state: EmulatorState) -> None:
    """Install `StateFreezer` on `state` (only in a process the emulator owns)."""
    state.work_hooks.append(StateFreezer(state).work_changed)
