"""A stream of tasks as CreateTasks bodies, each task translated once, as it arrives.

`TaskEncoder.encode` checks one task and turns it into its JSON (the same checks and the same
JSON as `tasks.task_to_json`; its violations name the task's stream index), and measures its
share of each size bound of one request (`request_size`). `BatchBody.add` appends encoded tasks
to one request's body, which is held as bytes, never as objects, until it is sent; it refuses a
task that would pass a bound, so the caller cuts the batch there.

A finished body is byte for byte the body `tasks.plan_create_tasks` builds for the same tasks
(keys sorted, each item tagged with its `__item_idx`), so its fingerprint is the same too, and a
batch is the same request whichever way, and whichever version of the gateway, sent it. The tag
is the first key of every item (`_` sorts before any letter), so it is written in front of the
task's encoded JSON instead of inside it.
"""

from __future__ import annotations

import orjson

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.translate.request_size import (
    MAX_BODY_BYTES,
    MAX_FREE_FIELDS_BYTES,
    MAX_INPUT_VALUES_BYTES,
    MAX_OUTPUT_VALUES_BYTES,
    OverBudget,
    RequestTally,
)
from gateway.translate.tasks import ITEM_INDEX_KEY, json_size, task_to_json

_SORTED = orjson.OPT_SORT_KEYS
_TAG = b'{"' + ITEM_INDEX_KEY.encode() + b'":"%d",'
_TAG_SIZE = len(_TAG % 9_999) + 1  # the largest tag of a batch, with its comma
_MAX_TAIL = MAX_BODY_BYTES - _TAG_SIZE - 1  # one task alone in a body: "[" + tag + tail + "]"


# A task as encoded: its JSON object without the opening brace, its pool, and its shares of the
# input_values, output_values and free-field bounds (a tuple: one is made per task of a stream).
EncodedTask = tuple[bytes, str, int, int, int]


class TaskEncoder:
    """Checks and encodes the tasks of one stream (a pool id found valid is not checked again)."""

    def __init__(self) -> None:
        self._tally = RequestTally()
        self._problems = errors.ViolationList()  # empty unless a task is refused

    def encode(self, task: pb.Task, index: int) -> EncodedTask:
        """The task at stream `index`, encoded; InvalidArgument naming `tasks[index]` when it is bad,
        or when it alone passes a bound of one request."""
        tally, problems = self._tally, self._problems
        tally.free_bytes = 0
        try:
            item = task_to_json(task, index, problems, tally)
        except OverBudget:  # one task's free fields are at most 7 x 64 KiB: never over 4 MiB
            item = {}
        if problems.items:
            self._problems = errors.ViolationList()
            raise _refused(index, problems)
        input_size = len(orjson.dumps(item["input_values"]))
        output = 0
        if tally.solution_values:
            output = json_size(tally.solution_values)
            tally.solution_values.clear()
        tail = orjson.dumps(item, option=_SORTED)[1:]
        if input_size > MAX_INPUT_VALUES_BYTES or output > MAX_OUTPUT_VALUES_BYTES or len(tail) > _MAX_TAIL:
            raise _refused(index, _too_large(f"tasks[{index}]", input_size, output, len(tail)))
        return tail, item["pool_id"], input_size, output, tally.free_bytes


def _too_large(path: str, input_size: int, output: int, tail: int) -> errors.ViolationList:
    """A task that alone passes a bound of one request: no batch can take it."""
    problems = errors.ViolationList()
    for size, bound, where, what in (
        (input_size, MAX_INPUT_VALUES_BYTES, f"{path}.input_values", "input_values"),
        (output, MAX_OUTPUT_VALUES_BYTES, path, "the output_values of its solutions"),
        (tail + _TAG_SIZE + 1, MAX_BODY_BYTES, path, "the task as JSON"),
    ):
        if size > bound:
            problems.add(where, f"{what}: {size} bytes; at most {bound} in one request", "TOO_LARGE")
    return problems


def _refused(index: int, problems: errors.ViolationList) -> errors.InvalidArgument:
    first = problems.items[0]
    return errors.InvalidArgument(
        f"the task at stream index {index} is invalid, so the import stopped there: "
        f"{first.field}: {first.description}; nothing from there on was sent",
        violations=problems.items,
        metadata={"stream_index": str(index)},
    )


class BatchBody:
    """One request's JSON body, written task by task, with its running totals against the bounds."""

    __slots__ = ("_buffer", "count", "free", "input", "last_pool", "output", "pools")

    def __init__(self) -> None:
        self._buffer = bytearray(b"[")
        self.count = 0
        self.input = 0
        self.output = 0
        self.free = 0
        self.pools: set[str] = set()
        self.last_pool = ""

    def add(self, task: EncodedTask, cap: int, one_pool: bool) -> bool:
        """Append `task`, unless the body has `cap` tasks, or `task` would pass a bound or (with
        `one_pool`) is for another pool: then False, and the batch is cut before it. An empty
        body takes any task (`TaskEncoder` refuses one that no body could take)."""
        tail, pool_id, input_size, output, free = task
        buffer, count = self._buffer, self.count
        if count:
            if (
                count >= cap
                or self.input + input_size > MAX_INPUT_VALUES_BYTES
                or self.output + output > MAX_OUTPUT_VALUES_BYTES
                or self.free + free > MAX_FREE_FIELDS_BYTES
                or len(buffer) + len(tail) + _TAG_SIZE + 1 > MAX_BODY_BYTES
                or (one_pool and pool_id != self.last_pool)
            ):
                return False
            buffer += b","
        buffer += _TAG % count
        buffer += tail
        self.count = count + 1
        self.input += input_size
        self.output += output
        self.free += free
        if pool_id != self.last_pool:
            self.pools.add(pool_id)
            self.last_pool = pool_id
        return True

    def finish(self) -> bytes:
        """The body as sent; the buffer is released."""
        self._buffer += b"]"
        body = bytes(self._buffer)
        self._buffer = bytearray()
        return body
