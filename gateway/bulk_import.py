"""ImportTasks: a stream of any length, cut into Toloka-sized async batches, each created once.

Batch i of an import is an ordinary async CreateTasks whose operation_id is
UUIDv5(namespace = the import's operation_id, name = str(i)). So each batch goes through the same
validation, rate limits (its cost is its task count), dedupe, retries and shared poller as a
CreateTasks call, and the ids are the same on every replica and every re-send: re-sending the
stream after any crash replays the batches Toloka accepted (or settles them by reading the
operation) and sends the rest. A different stream under the same operation_id has different batch
fingerprints, so dedupe refuses it (ALREADY_EXISTS).

Batches are cut at `batch_size` tasks, before their `input_values` would pass Toloka's 1 MiB per
request, and, with `one_pool_per_batch`, where the pool changes. One batch is in flight while the
next is read, and the stream is read no faster than batches are admitted and sent, so memory holds
about two batches and the messages gRPC has buffered, whatever the stream's length.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.translate.ids import check_operation_id
from gateway.translate.request_size import MAX_INPUT_VALUES_BYTES
from gateway.translate.values import NonFiniteNumber, struct_values

BATCH_CAP = 10_000  # Toloka's advice for one async request
# The batch's input_values as one JSON array: each value, a comma each, brackets, with room to spare.
INPUT_VALUES_BUDGET = MAX_INPUT_VALUES_BYTES - 4096
_TASK_PATH = re.compile(r"^tasks\[(\d+)\]")


class CreatesTasks(Protocol):
    """The CreateTasks use case, which every batch goes through."""

    async def create_tasks(self, req: pb.CreateTasksRequest, call: Call) -> pb.CreateTasksResponse:
        """Create tasks once per operation_id."""
        ...


def batch_operation_id(import_operation_id: str, index: int) -> str:
    """The operation_id of batch `index` of an import: the same on every replica and re-send
    (the import's id is case-insensitive, as every operation_id is)."""
    return str(uuid.uuid5(uuid.UUID(import_operation_id.lower()), str(index)))


def input_values_size(task: pb.Task) -> int:
    """Bytes of compact JSON the task's input_values take (0 when they cannot be JSON: the
    batch's validation then names the task)."""
    try:
        return len(orjson.dumps(struct_values(task.input_values)))
    except (NonFiniteNumber, TypeError, ValueError):
        return 0


@dataclass
class _Batch:
    """The batch being filled: its index, its first task's stream index, its tasks."""

    index: int
    first: int
    tasks: list[pb.Task] = field(default_factory=list)
    input_bytes: int = 2  # the array's brackets

    def fits(self, task: pb.Task, size: int, options: pb.ImportTasksOptions) -> bool:
        """Whether `task` (of `size` bytes of input_values) goes into this batch."""
        if not self.tasks:
            return True
        full = len(self.tasks) >= (options.batch_size or BATCH_CAP)
        if full or self.input_bytes + size + 1 > INPUT_VALUES_BUDGET:
            return False
        return not options.one_pool_per_batch or task.pool_id == self.tasks[-1].pool_id

    def next(self) -> _Batch:
        return _Batch(self.index + 1, self.first + len(self.tasks))


@dataclass
class _Tally:
    batches: int = 0
    sent: int = 0
    replayed: int = 0


class _Sending:
    """At most one batch in flight while the next one is read. Its answer comes before the next
    batch starts, so batches are answered, and an invalid one stops the import, in order.

    `stopped` turns true when a batch could not be sent before the deadline: the summary that says
    where a re-send continues is its answer, and nothing after that batch is sent.
    """

    def __init__(
        self, send: Callable[[_Batch], Awaitable[pb.ImportTasksResponse | None]], tally: _Tally
    ) -> None:
        self._send = send
        self._tally = tally
        self._pending: tuple[_Batch, asyncio.Future[pb.ImportTasksResponse | None]] | None = None
        self.stopped = False

    async def start(self, batch: _Batch) -> pb.ImportTasksResponse | None:
        """The answer of the batch in flight (None when there is none); then `batch` is in flight,
        unless the import stopped."""
        reply = await self.finish()
        if not self.stopped:
            self._pending = (batch, asyncio.ensure_future(self._send(batch)))
        return reply

    async def finish(self) -> pb.ImportTasksResponse | None:
        """The answer of the batch in flight: its ImportedBatch, or the summary that ends the import
        when it missed the deadline; None when there is none."""
        if self._pending is None:
            return None
        batch, sent = self._pending
        self._pending = None
        reply = await sent
        if reply is None:
            self.stopped = True
            return _summary(self._tally, complete=False, next_index=batch.first)
        return reply

    def cancel(self) -> None:
        """Stop waiting for a batch in flight (its create goes on in dedupe; a re-send replays it)."""
        if self._pending is not None:
            self._pending[1].cancel()
            self._pending = None


class ImportService:
    """ImportTasks over the CreateTasks use case."""

    def __init__(self, *, tasks: CreatesTasks) -> None:
        self._tasks = tasks

    async def import_tasks(
        self, requests: AsyncIterator[pb.ImportTasksRequest], call: Call
    ) -> AsyncIterator[pb.ImportTasksResponse]:
        """Answer each batch as Toloka accepts it, then the summary (see the module docstring)."""
        options = await _options(requests)
        tally = _Tally()
        batch = _Batch(0, 0)
        sending = _Sending(lambda b: self._send(b, options, call, tally), tally)
        try:
            async for message in requests:
                if message.WhichOneof("part") != "chunk":
                    raise _at(batch.first + len(batch.tasks), "options may be sent only once, first")
                for task in message.chunk.tasks:
                    _check_pool(task, batch.first + len(batch.tasks), call)
                    size = input_values_size(task)
                    if not batch.fits(task, size, options):
                        if (reply := await sending.start(batch)) is not None:
                            yield reply
                        if sending.stopped:
                            return
                        batch = batch.next()
                    batch.tasks.append(task)
                    batch.input_bytes += size + 1
            if batch.tasks and (reply := await sending.start(batch)) is not None:
                yield reply
            if not sending.stopped and (reply := await sending.finish()) is not None:
                yield reply
            if not sending.stopped:
                yield _summary(tally, complete=True, next_index=batch.first + len(batch.tasks))
        finally:
            sending.cancel()

    async def _send(
        self, batch: _Batch, options: pb.ImportTasksOptions, call: Call, tally: _Tally
    ) -> pb.ImportTasksResponse | None:
        """The batch's answer, or None when the caller's time ran out before Toloka accepted it.

        A batch waits for the limits as long as the caller's time allows (politely: the pause is
        the limiter's own RetryInfo); a batch that costs more than a whole limit fails at once.
        """
        req = pb.CreateTasksRequest(
            tasks=batch.tasks,
            operation_id=batch_operation_id(options.operation_id, batch.index),
            async_mode=True,
            allow_defaults=options.allow_defaults,
            open_pool=options.open_pool,
            skip_invalid_items=options.skip_invalid_items,
        )
        while True:
            if call.expired():
                return None  # a re-send of the stream continues here, with the same batch ids
            try:
                reply = await self._tasks.create_tasks(req, call)
                break
            except errors.InvalidArgument as e:
                raise _in_stream(e, batch) from None
            except errors.RateLimited as e:
                left = call.remaining()
                if e.retry_after is None:
                    raise  # more than a whole limit: only a smaller batch_size helps
                if left is not None and left <= e.retry_after:
                    return None
                await call.clock.sleep(e.retry_after)
            except errors.DeadlineExceeded:
                if call.expired():
                    return None
                raise
        tally.batches += 1
        if reply.replayed:
            tally.replayed += len(batch.tasks)
        else:
            tally.sent += len(batch.tasks)
        done = pb.ImportedBatch(
            index=batch.index,
            operation_id=reply.operation_id,
            first_task_index=batch.first,
            task_count=len(batch.tasks),
            operation=reply.operation,
            replayed=reply.replayed,
        )
        return pb.ImportTasksResponse(batch=done)


async def _options(requests: AsyncIterator[pb.ImportTasksRequest]) -> pb.ImportTasksOptions:
    """The first message's options, checked; InvalidArgument when the stream does not start with them."""
    first = await anext(requests, None)
    if first is None or first.WhichOneof("part") != "options":
        raise errors.InvalidArgument(
            "the first message of ImportTasks must carry the options (operation_id first, then the chunks)",
            violations=[errors.FieldViolation("options", "must be the first message", "REQUIRED")],
        )
    options = first.options
    problems = errors.ViolationList()
    if not options.operation_id:
        problems.add("options.operation_id", "is required: a UUID naming the whole import", "REQUIRED")
    check_operation_id(options.operation_id, problems, "options.operation_id")
    if not 0 <= options.batch_size <= BATCH_CAP:
        problems.add(
            "options.batch_size", f"must be between 1 and {BATCH_CAP} (0: {BATCH_CAP})", "OUT_OF_RANGE"
        )
    problems.raise_if_any("the import's options are invalid")
    return options


def _check_pool(task: pb.Task, index: int, call: Call) -> None:
    if call.pools is not None and task.pool_id not in call.pools:
        raise errors.PermissionDenied(
            f"caller {call.caller!r} may not use pool {task.pool_id} (the task at stream index {index}); "
            "nothing from there on was sent",
            reason="POOL_NOT_ALLOWED",
            metadata={"caller": call.caller, "pools": task.pool_id, "stream_index": str(index)},
        )


def _at(index: int, description: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        f"at stream index {index}: {description}; nothing from there on was sent",
        violations=[errors.FieldViolation(f"stream[{index}]", description, "INVALID")],
        metadata={"stream_index": str(index)},
    )


def _in_stream(error: errors.InvalidArgument, batch: _Batch) -> errors.InvalidArgument:
    """The batch's refusal with its task paths as stream indexes (`tasks[i]` of the whole stream)."""

    def shift(path: str) -> str:
        return _TASK_PATH.sub(lambda m: f"tasks[{batch.first + int(m.group(1))}]", path)

    violations = [errors.FieldViolation(shift(v.field), v.description, v.reason) for v in error.violations]
    first = violations[0].field if violations else f"tasks[{batch.first}]"
    where = _TASK_PATH.match(first)
    index = int(where.group(1)) if where else batch.first
    detail = f"{violations[0].field}: {violations[0].description}" if violations else error.message
    return errors.InvalidArgument(
        f"batch {batch.index} is invalid, so the import stopped before it (stream index {batch.first}): {detail}",
        violations=violations,
        metadata={"stream_index": str(index), "batch": str(batch.index)},
    )


def _summary(tally: _Tally, *, complete: bool, next_index: int) -> pb.ImportTasksResponse:
    return pb.ImportTasksResponse(
        summary=pb.ImportSummary(
            batches=tally.batches,
            tasks_sent=tally.sent,
            tasks_replayed=tally.replayed,
            complete=complete,
            next_task_index=0 if complete else next_index,
        )
    )
