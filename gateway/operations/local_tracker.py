"""In-process tracker: one asyncio task per operation with waiters, for a single replica."""

from __future__ import annotations

import asyncio
import random

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.operations.operation_state import OperationEntry
from gateway.operations.tracker import FetchOperation
from gateway.operations.tracker_base import TrackerBase
from gateway.settings import PollerSettings


class LocalOperationTracker(TrackerBase):
    """Polls each operation that has waiters in this process, once, however many wait."""

    def __init__(
        self,
        *,
        settings: PollerSettings,
        fetch: FetchOperation,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(settings=settings, fetch=fetch, clock=clock, rng=rng or random.Random())
        self._loops: dict[str, asyncio.Task[None]] = {}

    @property
    def active_pollers(self) -> int:
        """Poll loops running in this process."""
        return len(self._loops)

    @property
    def degraded(self) -> bool:
        """Never: there is no shared backend to lose."""
        return False

    def _ensure_polling(self, entry: OperationEntry) -> None:
        key = entry.operation_id
        task = self._loops.get(key)
        if task is not None and not task.done():
            return
        task = asyncio.create_task(self._poll(entry, lambda: entry.waiters > 0), name=f"poll:{key}")
        self._loops[key] = task
        task.add_done_callback(lambda t: self._loops.pop(key) if self._loops.get(key) is t else None)

    async def close(self) -> None:
        """Stop every poll loop."""
        tasks = list(self._loops.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()
