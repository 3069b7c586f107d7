"""A manual clock that keeps each pause the retry policy asked for."""

from __future__ import annotations

from tests.support.clock import ManualClock


class PauseLog(ManualClock):
    """The suites' ManualClock (autojump: a pause passes at once) with every pause, in order."""

    def __init__(self) -> None:
        super().__init__(autojump=True)
        self.pauses: list[float] = []

    async def sleep(self, seconds: float) -> None:
        """Record the pause, then jump over it."""
        self.pauses.append(seconds)
        await super().sleep(seconds)
