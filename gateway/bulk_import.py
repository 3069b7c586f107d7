"""ImportTasks: a stream of any length, cut into Toloka-sized async batches, each created once.

Batch i of an import is an async CreateTasks whose operation_id is UUIDv5(namespace = the import's
operation_id, name = str(i)). It goes through the same validation, rate limits (its cost is its task
count), dedupe, retries and shared operation record as a CreateTasks call (`PreparedCreate`), and
the ids are the same on every replica and every re-send: re-sending the stream after any crash
replays the batches Toloka accepted (or settles them by reading the operation) and sends the rest.
A different stream under the same operation_id has different batch fingerprints, so dedupe refuses
it (ALREADY_EXISTS). Only whole batches are ever sent: a batch cut short (by the deadline or bad
input) would get the id of the whole one a re-send makes.

Each task is checked and translated once, as it arrives (`translate.batch_body`): a bad task ends
the import at its stream index before its batch is sent, and a batch is held as its JSON body, not
as objects. Batches are cut at `batch_size` tasks (at most the server's tasks per request), before
any of a request's size bounds would be passed, and, with `one_pool_per_batch`, where the pool
changes. Up to IN_FLIGHT batches are in flight at once (Toloka runs async operations side by side;
each batch's id is its index's, so which is accepted first changes nothing), and reading pauses
while that many (at least two) are whole, so memory holds about two batch bodies plus the one
being filled, whatever the stream's length. Batches are answered in stream order, each as soon as it and every
batch before it are accepted, and the caller's deadline ends the import with a summary even while
the gateway waits for the caller's next message.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Protocol

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.bulk_flow import Flow, Refused, Sent
from gateway.call import Call
from gateway.service import required_operation_id
from gateway.translate.batch_body import BatchBody, TaskEncoder
from gateway.translate.tasks import CreateTasksPlan, fingerprint

BATCH_CAP = 10_000  # Toloka's advice for one async request
IN_FLIGHT = 2  # batches sent and not yet answered, at most
_TASK_PATH = re.compile(r"^tasks\[(\d+)\]")


class CreatesPlannedTasks(Protocol):
    """The CreateTasks use case for a translated request, which every batch goes through."""

    async def create(
        self, plan: CreateTasksPlan, *, pools: Collection[str], call: Call
    ) -> pb.CreateTasksResponse:
        """Create the planned tasks once per operation_id."""
        ...


def batch_operation_id(import_operation_id: str, index: int) -> str:
    """The operation_id of batch `index` of an import: the same on every replica and re-send
    (the import's id is case-insensitive, as every operation_id is)."""
    return str(uuid.uuid5(uuid.UUID(import_operation_id.lower()), str(index)))


@dataclass
class _Batch:
    """A batch: its index, its first task's stream index, and its body (being filled, then sealed)."""

    index: int
    first: int
    filling: BatchBody = field(default_factory=BatchBody)
    body: bytes = b""
    count: int = 0
    pools: frozenset[str] = frozenset()

    def seal(self) -> _Batch:
        """This batch, whole: its body as bytes; returns the next (empty) batch."""
        self.count, self.pools = self.filling.count, frozenset(self.filling.pools)
        self.body = self.filling.finish()
        return _Batch(self.index + 1, self.first + self.count)


@dataclass
class _Tally:
    batches: int = 0
    sent: int = 0
    replayed: int = 0

    def answered(self, batch: pb.ImportedBatch) -> None:
        """Count a batch as it is answered (in stream order)."""
        self.batches += 1
        if batch.replayed:
            self.replayed += batch.task_count
        else:
            self.sent += batch.task_count


class _Stream:
    """What an import has read: the batch being filled, whole batches waiting to be sent, and how
    it ends (the caller closed the stream, bad input, the deadline)."""

    def __init__(self, options: pb.ImportTasksOptions, cap: int, call: Call) -> None:
        self._cap = cap
        self._one_pool = options.one_pool_per_batch
        self._call = call
        self._encoder = TaskEncoder()
        self.tally = _Tally()
        self.batch = _Batch(0, 0)
        self.ready: deque[_Batch] = deque()
        self.ended = False
        self.refusal: errors.GatewayError | None = None  # bad input: what came before it is sent first
        self.over = False  # the deadline ended it: the summary has been answered

    def reading(self, flow: Flow[_Batch]) -> bool:
        """Whether to read on: not while two whole batches (or as many as may be in flight, if
        more) are held, sent or waiting to be (the stream's backpressure)."""
        return not (self.ended or self.refusal) and len(self.ready) + flow.count < max(2, flow.width)

    @property
    def drained(self) -> bool:
        """Nothing more will be read, and every whole batch has been sent."""
        return bool(self.ended or self.refusal) and not self.ready

    def on(self, event: object, flow: Flow[_Batch]) -> pb.ImportTasksResponse | None:
        """Take one event of the flow; the answer it gives the caller, if any."""
        if isinstance(event, Sent):
            if event.reply is None:  # the deadline came first: nothing after it is sent
                return self._stop(event.batch.first)
            reply: pb.ImportTasksResponse = event.reply
            self.tally.answered(reply.batch)
            return reply
        if event is Flow.DEADLINE:
            in_flight = flow.in_flight
            first = in_flight or (self.ready[0] if self.ready else self.batch)
            return self._stop(first.first)
        if event is Flow.END:
            self.ended = True
            if self.batch.filling.count:
                self._seal()
        elif isinstance(event, Refused):
            self.refusal = event.error
        elif isinstance(event, pb.ImportTasksRequest):
            try:
                self._read(event)
            except errors.GatewayError as e:
                self.refusal = e
        return None

    def _read(self, message: pb.ImportTasksRequest) -> None:
        if message.WhichOneof("part") != "chunk":
            raise _at(self.batch.first + self.batch.filling.count, "options may be sent only once, first")
        cap, one_pool, pools, encode = self._cap, self._one_pool, self._call.pools, self._encoder.encode
        for task in message.chunk.tasks:
            batch = self.batch
            index = batch.first + batch.filling.count
            if pools is not None:
                _check_pool(task, index, self._call)
            encoded = encode(task, index)  # translated once, whichever batch takes it
            if not batch.filling.add(encoded, cap, one_pool):
                self._seal()
                self.batch.filling.add(encoded, cap, one_pool)
            if self.batch.filling.count >= cap:
                self._seal()  # full: it goes without waiting for the next task

    def _seal(self) -> None:
        batch = self.batch
        self.batch = batch.seal()
        self.ready.append(batch)

    def _stop(self, next_index: int) -> pb.ImportTasksResponse:
        self.over = True
        return _summary(self.tally, complete=False, next_index=next_index)


class ImportService:
    """ImportTasks over the CreateTasks use case."""

    def __init__(
        self,
        *,
        creates: CreatesPlannedTasks,
        max_tasks_per_request: int = BATCH_CAP,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self._creates = creates
        self._cap = min(BATCH_CAP, max_tasks_per_request)
        self._in_flight = in_flight

    async def import_tasks(
        self, requests: AsyncIterator[pb.ImportTasksRequest], call: Call
    ) -> AsyncIterator[pb.ImportTasksResponse]:
        """Answer each batch as Toloka accepts it, then the summary (see the module docstring)."""
        options = await _options(requests, self._cap)
        stream = _Stream(options, options.batch_size or self._cap, call)
        flow: Flow[_Batch] = Flow(
            requests, call, lambda b: self._send(b, options, call), width=self._in_flight
        )
        try:
            while not stream.over:
                while stream.ready and not flow.full:
                    flow.start(stream.ready.popleft())
                if stream.drained and not flow.busy:
                    break
                reply = stream.on(await flow.wait(reading=stream.reading(flow)), flow)
                if reply is not None:
                    yield reply
            if stream.refusal is not None:
                raise stream.refusal
            if not stream.over:
                yield _summary(stream.tally, complete=True, next_index=0)
        finally:
            flow.cancel()

    async def _send(
        self, batch: _Batch, options: pb.ImportTasksOptions, call: Call
    ) -> pb.ImportTasksResponse | None:
        """The batch's answer, or None when the caller's time ran out before Toloka accepted it.

        A batch waits for the limits as long as the caller's time allows (politely: the pause is
        the limiter's own RetryInfo); a batch that costs more than a whole limit fails at once.
        """
        plan = _plan(batch, options)
        batch.body = b""  # the plan holds it now
        while True:
            if call.expired():
                return None  # a re-send of the stream continues here, with the same batch ids
            try:
                reply = await self._creates.create(plan, pools=batch.pools, call=call)
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
        done = pb.ImportedBatch(
            index=batch.index,
            operation_id=reply.operation_id,
            first_task_index=batch.first,
            task_count=batch.count,
            operation=reply.operation,
            replayed=reply.replayed,
        )
        return pb.ImportTasksResponse(batch=done)


def _plan(batch: _Batch, options: pb.ImportTasksOptions) -> CreateTasksPlan:
    """The batch as an async CreateTasks, as `plan_create_tasks` would plan the same tasks."""
    params = {"operation_id": batch_operation_id(options.operation_id, batch.index), "async_mode": "true"}
    for flag in ("allow_defaults", "open_pool", "skip_invalid_items"):
        if getattr(options, flag):
            params[flag] = "true"
    return CreateTasksPlan(
        operation_id=params["operation_id"],
        body=batch.body,
        params=params,
        task_count=batch.count,
        is_async=True,
        fingerprint=fingerprint(params, batch.body),
    )


async def _options(requests: AsyncIterator[pb.ImportTasksRequest], cap: int) -> pb.ImportTasksOptions:
    """The first message's options, checked; InvalidArgument when the stream does not start with them."""
    first = await anext(requests, None)
    if first is None or first.WhichOneof("part") != "options":
        raise errors.InvalidArgument(
            "the first message of ImportTasks must carry the options (operation_id first, then the chunks)",
            violations=[errors.FieldViolation("options", "must be the first message", "REQUIRED")],
        )
    options = first.options
    problems = errors.ViolationList()
    try:
        required_operation_id(options.operation_id)
    except errors.InvalidArgument as e:
        for v in e.violations:
            problems.add(f"options.{v.field}", v.description, v.reason)
    if not 0 <= options.batch_size <= cap:
        problems.add("options.batch_size", f"must be between 1 and {cap} (0: {cap})", "OUT_OF_RANGE")
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
