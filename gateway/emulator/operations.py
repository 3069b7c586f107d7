"""Operations whose state is computed lazily from the clock.

An operation submitted at `s` with duration `d` is PENDING until `s + 0.1 d`, then RUNNING with progress
growing linearly, and SUCCESS or FAIL from `s + d` on. With `d == 0` it is final from the start.
Its side effects (creating tasks, changing a pool's status) run once, when the state first observes
the operation finished (see `EmulatorState.advance`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.emulator.wire import JSON, iso

_PENDING_SHARE = 0.1


@dataclass
class Operation:
    """One Toloka operation (TASK.BATCH_CREATE or POOL.*)."""

    id: str
    type: str
    submitted_at: float
    duration_s: float
    parameters: JSON
    succeeds: bool = True
    details: JSON = field(default_factory=dict)
    log: list[JSON] = field(default_factory=list)
    # The log's first items, made when the log is first read (a batch's items, one per input).
    log_head: Callable[[], list[JSON]] | None = None
    on_finish: Callable[[], None] | None = None
    results: list[JSON] | None = None
    finished_effects_done: bool = False

    @property
    def finishes_at(self) -> float:
        """When the operation becomes SUCCESS or FAIL."""
        return self.submitted_at + self.duration_s

    def is_finished(self, now: float) -> bool:
        """Whether the operation is completed at `now`."""
        return now >= self.finishes_at

    def view(self, now: float) -> JSON:
        """The Operation JSON as of `now`."""
        body: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "submitted": iso(self.submitted_at),
            "parameters": self.parameters,
        }
        started_at = self.submitted_at + _PENDING_SHARE * self.duration_s
        if self.is_finished(now):
            body["status"] = "SUCCESS" if self.succeeds else "FAIL"
            body["started"] = iso(started_at)
            body["finished"] = iso(self.finishes_at)
            body["progress"] = 100
            body["details"] = self.details
        elif now < started_at:
            body["status"] = "PENDING"
            body["progress"] = 0
            body["details"] = {}
        else:
            body["status"] = "RUNNING"
            body["started"] = iso(started_at)
            share = (now - started_at) / (self.finishes_at - started_at)
            body["progress"] = min(99, int(share * 100))
            body["details"] = {}
        return body

    def log_view(self, now: float) -> list[JSON]:
        """The operation log: empty while not finished, then one item per input in input order."""
        if not self.is_finished(now):
            return []
        if self.log_head is not None:
            self.log[:0] = self.log_head()
            self.log_head = None
        return self.log
