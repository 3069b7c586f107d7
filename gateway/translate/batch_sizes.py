"""How much of a CreateTasks request's size budget one task takes, so that a stream of tasks can be
cut into batches that pass every bound of `request_size` (input_values, output_values, the free
fields, the body), measured the way the translation measures them.

A task of only pool_id, overlap and input_values (the common case) costs one Struct conversion; a
task with solutions or free fields is translated once more to be measured exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.errors import ViolationList
from gateway.translate.request_size import (
    MAX_BODY_BYTES,
    MAX_FREE_FIELDS_BYTES,
    MAX_INPUT_VALUES_BYTES,
    MAX_OUTPUT_VALUES_BYTES,
    OverBudget,
    RequestTally,
)
from gateway.translate.tasks import ITEM_INDEX_KEY, task_to_json
from gateway.translate.values import NonFiniteNumber, struct_values

_PLAIN_FIELDS = frozenset({"pool_id", "overlap", "infinite_overlap", "input_values"})
# Per task in the body besides its values: keys, pool id, overlap, the item index (`"__item_idx":"9999"`).
_ITEM_OVERHEAD = 96 + len(ITEM_INDEX_KEY)
_BODY_MARGIN = 65_536


@dataclass(frozen=True)
class TaskSize:
    """One task's share of each bound, in bytes (0 for a part that cannot be measured: the
    batch's validation then names the task)."""

    input: int
    output: int = 0
    free: int = 0
    body: int = 0


def task_size(task: pb.Task) -> TaskSize:
    """`task`'s share of each bound of one request."""
    if all(fd.name in _PLAIN_FIELDS for fd, _ in task.ListFields()):
        try:
            values = len(orjson.dumps(struct_values(task.input_values)))
        except (NonFiniteNumber, TypeError, ValueError):
            values = 0
        return TaskSize(input=values, body=values + len(task.pool_id) + _ITEM_OVERHEAD)
    tally = RequestTally()
    try:
        item = task_to_json(task, "tasks[0]", ViolationList(), tally)
    except OverBudget:
        return TaskSize(input=0, free=MAX_FREE_FIELDS_BYTES + 1)
    solutions = [
        s["output_values"] for key in ("known_solutions", "baseline_solutions") for s in item.get(key, ())
    ]
    return TaskSize(
        input=_size(item.get("input_values")),
        output=sum(_size(v) for v in solutions),
        free=tally.free_bytes,
        body=_size(item) + _ITEM_OVERHEAD,
    )


def _size(value: object) -> int:
    try:
        return len(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    except (TypeError, ValueError):
        return 0


@dataclass
class BatchBudget:
    """The running totals of one batch against the bounds of one request."""

    input: int = 0
    output: int = 0
    free: int = 0
    body: int = 2  # the array's brackets

    def fits(self, size: TaskSize) -> bool:
        """Whether one more task of `size` keeps the batch within every bound."""
        return (
            self.input + size.input <= MAX_INPUT_VALUES_BYTES
            and self.output + size.output <= MAX_OUTPUT_VALUES_BYTES
            and self.free + size.free <= MAX_FREE_FIELDS_BYTES
            and self.body + size.body + 1 <= MAX_BODY_BYTES - _BODY_MARGIN
        )

    def add(self, size: TaskSize) -> None:
        """Count one more task."""
        self.input += size.input
        self.output += size.output
        self.free += size.free
        self.body += size.body + 1
