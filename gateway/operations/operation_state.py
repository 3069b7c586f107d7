"""What one process knows about operations, and how waiters learn that it changed."""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Any

from gateway import errors
from gateway.translate.operations import is_final

Operation = dict[str, Any]

_STATUS_RANK = {"PENDING": 1, "RUNNING": 2, "SUCCESS": 3, "FAIL": 3}
_HISTORY = 64


def rank(op: Operation) -> int:
    """How far an operation has got; a state of lower rank than a known one is stale."""
    progress = op.get("progress")
    return _STATUS_RANK.get(str(op.get("status")), 0) * 1000 + (progress if isinstance(progress, int) else 0)


def _moved(old: Operation, new: Operation) -> bool:
    return old.get("status") != new.get("status") or old.get("progress") != new.get("progress")


class OperationEntry:
    """The latest known state of one operation, its waiters, and a wake-up for the next change.

    Waiters await `next_change()`, a future shared by all of them and replaced after each
    change, so one update wakes any number of waiters without a task per waiter.
    """

    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id
        self.op: Operation | None = None
        self.updated_at = float("-inf")
        self.error: errors.GatewayError | None = None
        self.last_error: errors.GatewayError | None = None
        self.waiters = 0
        self.version = 0
        self.history: deque[tuple[int, Operation]] = deque(maxlen=_HISTORY)
        self.inflight: asyncio.Future[Operation] | None = None
        self._changed: asyncio.Future[None] | None = None

    @property
    def final(self) -> bool:
        """True once a final state is known."""
        return self.op is not None and is_final(self.op)

    @property
    def settled(self) -> bool:
        """True when waiting longer cannot change the answer (final, or a definitive error)."""
        return self.final or self.error is not None

    def update(self, op: Operation, now: float) -> bool:
        """Take a newer state; True when status or progress moved (stale states are ignored)."""
        current = self.op
        if current is not None and rank(op) < rank(current):
            return False
        self.op, self.updated_at, self.error = op, max(self.updated_at, now), None
        if current is not None and not _moved(current, op):
            return False
        self.version += 1
        self.history.append((self.version, op))
        self._notify()
        return True

    def fail(self, error: errors.GatewayError) -> None:
        """Settle waiters with a definitive error (the first read said NotFound)."""
        self.error = error
        self._notify()

    def next_change(self) -> asyncio.Future[None]:
        """A future resolved at the next change (never cancel it: it is shared)."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def changes_since(self, version: int) -> list[tuple[int, Operation]]:
        """The remembered changes after `version`, oldest first."""
        return [(v, op) for v, op in self.history if v > version]

    def _notify(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None


class OperationBoard:
    """Entries by operation id; idle ones beyond `capacity` are forgotten, oldest first."""

    def __init__(self, *, capacity: int = 10_000) -> None:
        self._entries: OrderedDict[str, OperationEntry] = OrderedDict()
        self._capacity = capacity

    def get(self, operation_id: str) -> OperationEntry | None:
        """The entry, if the process knows the operation."""
        return self._entries.get(operation_id)

    def entry(self, operation_id: str) -> OperationEntry:
        """The entry, created when unknown; marks it recently used."""
        entry = self._entries.get(operation_id)
        if entry is None:
            entry = self._entries[operation_id] = OperationEntry(operation_id)
            self._prune()
        else:
            self._entries.move_to_end(operation_id)
        return entry

    def forget(self, entry: OperationEntry) -> None:
        """Drop an entry (e.g. after NotFound) so that the next waiter asks again."""
        if self._entries.get(entry.operation_id) is entry:
            del self._entries[entry.operation_id]

    def __len__(self) -> int:
        return len(self._entries)

    def _prune(self) -> None:
        excess = len(self._entries) - self._capacity
        if excess <= 0:
            return
        idle: list[str] = []
        for key, entry in self._entries.items():
            if len(idle) >= excess:
                break
            if entry.waiters == 0 and entry.inflight is None:
                idle.append(key)
        for key in idle:
            del self._entries[key]
