"""`client import-tasks FILE.jsonl`: stream a task file of any size through ImportTasks.

The file is read line by line as the gateway takes the stream, so a million-line file costs memory
for one chunk, not the file. The import's operation_id is printed first: re-running the command
with `--operation-id` and the same file continues after any interruption without creating a task
twice. A bad line stops the import there: batches before it were created, nothing after it is sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import uuid
from collections.abc import Iterator
from typing import Any, TextIO

import grpc

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.cli import summary
from gateway.cli.commands import CALL_FAILED, INTERRUPTED, OK, USAGE, connected, fail
from gateway.cli.progress import LiveLine, bar
from gateway.cli.task_file import TaskFileError, TaskSource, task_from

CHUNK = 1000  # tasks per stream message


class _Lines:
    """The import's request stream from a JSON-lines file; remembers the first bad line."""

    def __init__(self, path: str, args: argparse.Namespace, operation_id: str) -> None:
        self._path = path
        self._args = args
        self._operation_id = operation_id
        self.error: TaskFileError | None = None

    def __iter__(self) -> Iterator[pb.ImportTasksRequest]:
        options = pb.ImportTasksOptions(
            operation_id=self._operation_id,
            allow_defaults=self._args.allow_defaults,
            open_pool=self._args.open_pool,
            skip_invalid_items=self._args.skip_invalid_items,
            batch_size=self._args.batch_size,
        )
        yield pb.ImportTasksRequest(options=options)
        chunk: list[pb.Task] = []
        try:
            for task in self._tasks():
                chunk.append(task)
                if len(chunk) == CHUNK:
                    yield pb.ImportTasksRequest(chunk=pb.TaskChunk(tasks=chunk))
                    chunk = []
        except TaskFileError as e:
            self.error = e
            raise  # cancels the call: the batch being filled is never sent
        if chunk:
            yield pb.ImportTasksRequest(chunk=pb.TaskChunk(tasks=chunk))

    def _tasks(self) -> Iterator[pb.Task]:
        name = "<stdin>" if self._path == "-" else self._path
        with _open(self._path) as lines:
            for lineno, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{name} line {lineno}"
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TaskFileError(f"{where}: not valid JSON: {e.msg} (column {e.colno})") from None
                yield task_from(TaskSource(where, data), self._args.pool_id)


def _open(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8")
    except OSError as e:
        raise TaskFileError(f"{path}: cannot read: {e.strerror}") from None


def _count_lines(path: str) -> int | None:
    """Non-empty lines of the file (the bar's total), or None for stdin."""
    if path == "-":
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


class _Bar:
    """Tasks accepted so far, against the file's total when known."""

    def __init__(self, stream: TextIO, total: int | None) -> None:
        self._line = LiveLine(stream)
        self._total = total

    def update(self, batch: pb.ImportedBatch) -> None:
        done = batch.first_task_index + batch.task_count
        how = f"(batch {batch.index} {'replayed' if batch.replayed else 'accepted'})"
        if self._total:
            self._line.show(f"{bar(done, self._total)} {done}/{self._total} tasks {how}")
        else:
            self._line.show(f"{done} tasks {how}")

    def close(self) -> None:
        self._line.close()


def import_tasks(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`client import-tasks FILE --pool-id P`: stream the file; batches on stderr, the summary on stdout."""
    operation_id = args.operation_id or str(uuid.uuid4())
    print(f"operation_id {operation_id}", file=err if args.json else out, flush=True)
    try:
        total = _count_lines(args.file)
    except OSError as e:
        print(f"toloka-gateway client: {args.file}: cannot read: {e.strerror}", file=err)
        return USAGE
    lines = _Lines(args.file, args, operation_id)
    bar = _Bar(err, total)
    batches: list[pb.ImportedBatch] = []
    result = None
    logging.getLogger("grpc._channel").setLevel(logging.CRITICAL)  # a bad line is reported below
    with connected(args) as client:
        try:
            for reply in client.stub.ImportTasks(
                iter(lines), metadata=client.metadata, timeout=client.timeout
            ):
                if reply.WhichOneof("part") == "batch":
                    batches.append(reply.batch)
                    bar.update(reply.batch)
                else:
                    result = reply.summary
        except KeyboardInterrupt:
            bar.close()
            print(f"interrupted; continue with: {_resume(args, operation_id)}", file=err)
            return INTERRUPTED
        except grpc.RpcError as e:
            bar.close()
            if lines.error is not None:
                print(f"toloka-gateway client: {lines.error}; nothing from there on was sent", file=err)
                return USAGE
            return fail(e, err, args)
    bar.close()
    return _report(args, operation_id, batches, result, out)


def _report(
    args: argparse.Namespace,
    operation_id: str,
    batches: list[pb.ImportedBatch],
    result: pb.ImportSummary | None,
    out: TextIO,
) -> int:
    if result is None:
        return CALL_FAILED
    if args.json:
        data: dict[str, Any] = {"operation_id": operation_id, "summary": summary.to_json(result)}
        data["batches"] = [summary.to_json(b) for b in batches]
        print(summary.dumps(data), file=out)
    else:
        print(
            f"{result.batches} batches: {result.tasks_sent} tasks sent, {result.tasks_replayed} replayed"
            + ("" if result.complete else f"; stopped at task {result.next_task_index} (deadline)"),
            file=out,
        )
        if not result.complete:
            print(f"continue with: {_resume(args, operation_id)}", file=out)
    return OK if result.complete else CALL_FAILED


def _resume(args: argparse.Namespace, operation_id: str) -> str:
    flags = [f"--pool-id {args.pool_id}", f"--operation-id {operation_id}"]
    flags += [
        f"--{name.replace('_', '-')}"
        for name in ("allow_defaults", "open_pool", "skip_invalid_items")
        if getattr(args, name)
    ]
    if args.batch_size:
        flags.append(f"--batch-size {args.batch_size}")
    return f"toloka-gateway client import-tasks {shlex.quote(args.file)} {' '.join(flags)}"
