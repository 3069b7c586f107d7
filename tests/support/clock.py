"""The one manual clock of the suites: `gateway.clock.Clock` with time that tests move."""

from __future__ import annotations

import asyncio
import heapq
import itertools

from gateway.clock import Clock

START = 1000.0


async def settle(rounds: int = 30) -> None:
    """Let every ready task run until the loop is quiet."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class ManualClock:
    """Monotonic time that moves only when a test moves it; real time never wakes a sleeper.

    `sleep(s)` parks until `advance` / `advance_to` reaches its wake-up instant. An advance first
    lets ready tasks run (so they reach their sleeps), then wakes the sleepers in wake-up order,
    each at its own instant with the loop settled in between: a loop that sleeps again is woken
    again within the same advance, and reads the instant it woke at.

    `autojump=True` is for a test whose only actor is the code under test (a limiter waiting
    for capacity): a sleep moves the time to its own wake-up instant at once, as if nothing
    else happened meanwhile (trio's MockClock with autojump_threshold=0 is the model).

    `slept` sums the seconds every sleep asked for. `never_waking()` is a view of the same time
    whose sleeps never end: a process that died, or a background beat the test runs by hand.
    """

    def __init__(self, start: float = START, *, autojump: bool = False) -> None:
        self._now = start
        self.autojump = autojump
        self.slept = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """The manual time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the manual time is `seconds` later (autojump: move it there now)."""
        delay = max(0.0, seconds)
        self.slept += delay
        if self.autojump:
            self._now += delay
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + delay, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move the time `seconds` forward, waking every sleeper due by then at its own instant."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock does not go back ({seconds} s)")
        await self.advance_to(self._now + seconds)

    async def advance_to(self, when: float) -> None:
        """Move the time forward to `when` (see `advance`)."""
        if when < self._now:
            raise ValueError(f"a monotonic clock does not go back ({self._now} -> {when})")
        if self.autojump:  # nothing parks on an autojump clock: nothing to let run or wake
            self._now = when
            return
        await settle()
        while self._sleepers and self._sleepers[0][0] <= when:
            wake, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():  # a cancelled sleeper is only dropped
                self._now = max(self._now, wake)
                fut.set_result(None)
                await settle()
        self._now = when
        await settle()

    def never_waking(self) -> Clock:
        """This clock's time with sleeps that never end (cancelling them still works)."""
        return _NeverWaking(self)


class _NeverWaking:
    """`ManualClock.never_waking`."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.get_running_loop().create_future()
