"""Test double for the poller: a scripted Toloka operation source."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Any

from gateway import errors
from gateway.call import Call

Step = tuple[str, int]
TO_SUCCESS: tuple[Step, ...] = (("PENDING", 0), ("RUNNING", 30), ("RUNNING", 70), ("SUCCESS", 100))
TO_FAIL: tuple[Step, ...] = (("PENDING", 0), ("RUNNING", 50), ("FAIL", 50))


def operation(op_id: str, status: str, progress: int) -> dict[str, Any]:
    """An operation as Toloka's `GET /api/v1/operations/{id}` returns it."""
    op: dict[str, Any] = {
        "id": op_id,
        "type": "TASK.BATCH_CREATE",
        "status": status,
        "progress": progress,
        "submitted": "2024-05-01T10:00:00.000",
        "parameters": {"skip_invalid_items": False, "allow_defaults": False, "open_pool": True},
    }
    if status != "PENDING":
        op["started"] = "2024-05-01T10:00:00.500"
    if status in ("SUCCESS", "FAIL"):
        op["finished"] = "2024-05-01T10:00:03.250"
        op["details"] = {"total_count": 10000, "valid_count": 10000, "not_valid_count": 0,
                         "success_count": 10000, "failed_count": 0}  # fmt: skip
    return op


class ScriptedOperations:
    """Stands in for Toloka: each successful read advances an operation one step of its script.

    Counts reads, raises queued faults before touching the script, and raises NotFound for
    ids it was never told about.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.scripts: dict[str, Sequence[Step]] = {}
        self.reads: Counter[str] = Counter()
        self.read_times: defaultdict[str, list[float]] = defaultdict(list)
        self.faults: deque[errors.GatewayError] = deque()
        self._served: Counter[str] = Counter()

    def add(self, steps: Sequence[Step] = TO_SUCCESS, *, op_id: str | None = None) -> str:
        """Script an operation; the last step repeats forever."""
        op_id = op_id or str(uuid.uuid4())
        self.scripts[op_id] = tuple(steps)
        return op_id

    def fail_next(self, *faults: errors.GatewayError) -> None:
        """Make the next reads (of any operation) raise these, in order."""
        self.faults.extend(faults)

    def state(self, op_id: str, step: int) -> dict[str, Any]:
        """The operation as it looks at a given step of its script."""
        status, progress = self.scripts[op_id][step]
        return operation(op_id, status, progress)

    @property
    def total_reads(self) -> int:
        return sum(self.reads.values())

    async def fetch(self, op_id: str, call: Call) -> dict[str, Any]:
        self.reads[op_id] += 1
        self.read_times[op_id].append(self.clock())
        await asyncio.sleep(0)
        if self.faults:
            raise self.faults.popleft()
        if op_id not in self.scripts:
            raise errors.NotFound(f"operation {op_id} does not exist", toloka_code="DOES_NOT_EXIST")
        steps = self.scripts[op_id]
        index = min(self._served[op_id], len(steps) - 1)
        self._served[op_id] += 1
        return self.state(op_id, index)
