"""`LimitSpec`: one sliding-window limit, which request kinds it counts and what a request costs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.request_kinds import ALL_KINDS

Unit = Literal["requests", "tasks"]


@dataclass(frozen=True)
class LimitSpec:
    """One limit: at most `capacity` units of the listed kinds in any sliding `period_s`.

    A `shadow` limit is decided and reported on every path, but never refuses a request.
    """

    name: str
    kinds: tuple[str, ...]
    capacity: int
    period_s: float
    unit: Unit = "requests"
    shadow: bool = False

    def applies_to(self, kind: str) -> bool:
        """True when a request of `kind` counts against this limit."""
        return ALL_KINDS in self.kinds or kind in self.kinds

    def cost(self, tasks: int) -> int:
        """What one request carrying `tasks` tasks costs against this limit."""
        return max(1, tasks) if self.unit == "tasks" else 1
