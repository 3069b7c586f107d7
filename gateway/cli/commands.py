"""The client commands: one function per subcommand, each returning the process exit code.

Exit codes: 0 done; 1 the call failed (gRPC error, or the operation FAILED); 2 bad usage, input or
connection options (nothing was sent); 130 interrupted by Ctrl-C (the operation goes on; the command that
resumes the wait is printed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

import grpc
from google.protobuf import duration_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.cli import summary
from gateway.cli.channel import ClientSetupError, call_metadata, open_channel
from gateway.cli.hints import hint
from gateway.cli.progress import ProgressBar
from gateway.cli.rich_error import describe
from gateway.cli.task_file import TaskFileError, parse_rules, parse_tasks, read_text

OK, CALL_FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
# WaitOperation's own timeout is this much shorter than the RPC deadline, so the server answers
# with the latest state instead of the deadline cutting the call off.
WAIT_MARGIN_S = 1.0


class Client:
    """A channel to the gateway, the stub, and the metadata and deadline every call carries."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.metadata = call_metadata(args)
        self.channel = open_channel(args)
        self.stub = pb_grpc.TolokaGatewayStub(self.channel)  # type: ignore[no-untyped-call]
        self.timeout: float = args.timeout


@contextmanager
def connected(args: argparse.Namespace) -> Iterator[Client]:
    """A Client, closed afterwards."""
    client = Client(args)
    try:
        yield client
    finally:
        client.channel.close()


def fail(error: grpc.RpcError, err: TextIO, args: argparse.Namespace) -> int:
    """Print a failed call's status and, where there is an obvious one, the fix."""
    print(f"toloka-gateway client: {describe(error)}", file=err)
    fix = hint(error, args)
    if fix is not None:
        print(f"hint: {fix}", file=err)
    return CALL_FAILED


def resume_command(operation_id: str) -> str:
    """The command that picks a wait up again."""
    return f"toloka-gateway client wait {operation_id}"


def _interrupted(operation_id: str, err: TextIO) -> int:
    print(
        f"\ninterrupted; operation {operation_id} goes on. Resume the wait with:\n"
        f"  {resume_command(operation_id)}",
        file=err,
    )
    return INTERRUPTED


def _usage(error: TaskFileError, err: TextIO) -> int:
    print(f"toloka-gateway client: {error}", file=err)
    return USAGE


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(max(0.0, seconds) * 1e9))
    return d


def _wait(
    client: Client, operation_id: str, *, log: bool, progress: ProgressBar | None
) -> pb.WaitOperationResponse:
    """Follow the operation (WatchOperation, drawing progress), then read its final state and log."""
    if progress is not None:
        stream = client.stub.WatchOperation(
            pb.WatchOperationRequest(operation_id=operation_id),
            metadata=client.metadata,
            timeout=client.timeout,
        )
        try:
            for update in stream:
                progress.update(update.operation)
        except grpc.RpcError as e:
            if not (isinstance(e, grpc.Call) and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        finally:
            progress.close()
    request = pb.WaitOperationRequest(
        operation_id=operation_id,
        include_log=log,
        timeout=_duration(0 if progress is not None else client.timeout - WAIT_MARGIN_S),
    )
    reply: pb.WaitOperationResponse = client.stub.WaitOperation(
        request, metadata=client.metadata, timeout=client.timeout
    )
    return reply


def _create_request(args: argparse.Namespace, tasks: list[pb.Task]) -> pb.CreateTasksRequest:
    request = pb.CreateTasksRequest(
        tasks=tasks,
        operation_id=args.operation_id or "",
        allow_defaults=args.allow_defaults,
        open_pool=args.open_pool,
        skip_invalid_items=args.skip_invalid_items,
    )
    if args.async_mode is not None:
        request.async_mode = args.async_mode
    return request


def _send(args: argparse.Namespace, client: Client, tasks: list[pb.Task]) -> pb.CreateTasksResponse:
    created: pb.CreateTasksResponse = client.stub.CreateTasks(
        _create_request(args, tasks), metadata=client.metadata, timeout=client.timeout
    )
    return created


def _print_created(args: argparse.Namespace, created: pb.CreateTasksResponse, out: TextIO) -> None:
    """No wait: the reply, and for an operation the command that follows it."""
    if args.json:
        print(summary.dumps({"create": summary.to_json(created)}), file=out)
        return
    lines = summary.create_lines(created)
    if created.HasField("operation"):
        lines.append(f"follow it with: {resume_command(created.operation_id)}")
    print("\n".join(lines), file=out)


def _announce(args: argparse.Namespace, created: pb.CreateTasksResponse, out: TextIO, err: TextIO) -> None:
    """Before a wait: the operation_id first (stderr under --json, so stdout stays one JSON document)."""
    line = summary.create_lines(created)[0]
    print(line, file=err if args.json else out, flush=True)


def create_tasks(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`client create-tasks FILE --pool-id P`: read and check every task, send them, optionally wait.

    With --wait the operation_id is printed first, then the progress (stderr), then the outcome.
    """
    try:
        text, name = read_text(args.file)
        tasks = parse_tasks(text, name=name, pool_id=args.pool_id)
    except TaskFileError as e:
        return _usage(e, err)
    with connected(args) as client:
        try:
            created = _send(args, client, tasks)
        except grpc.RpcError as e:
            return fail(e, err, args)
        if not (args.wait and created.HasField("operation")):
            _print_created(args, created, out)
            return CALL_FAILED if created.operation.status == pb.OPERATION_STATUS_FAIL else OK
        try:
            _announce(args, created, out, err)
            progress = None if args.json else ProgressBar(err)
            waited = _wait(client, created.operation_id, log=True, progress=progress)
        except KeyboardInterrupt:
            return _interrupted(created.operation_id, err)
        except grpc.RpcError as e:
            return fail(e, err, args)
    if args.json:
        print(summary.dumps({"create": summary.to_json(created), "wait": summary.to_json(waited)}), file=out)
    else:
        print("\n".join(summary.wait_lines(waited, with_log=True)), file=out)
    return CALL_FAILED if waited.operation.status == pb.OPERATION_STATUS_FAIL else OK


def wait(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`client wait OPERATION_ID [--log]`: wait until done or --timeout, print the state."""
    with connected(args) as client:
        try:
            print(
                f"waiting for operation {args.operation_id} (at most {args.timeout:g} s; "
                "Ctrl-C stops the wait, not the operation)",
                file=err,
                flush=True,
            )
            reply = _wait(client, args.operation_id, log=args.log, progress=None)
        except KeyboardInterrupt:
            return _interrupted(args.operation_id, err)
        except grpc.RpcError as e:
            return fail(e, err, args)
    if args.json:
        print(summary.dumps(summary.to_json(reply)), file=out)
    else:
        print("\n".join(summary.wait_lines(reply, with_log=args.log)), file=out)
    return CALL_FAILED if reply.operation.status == pb.OPERATION_STATUS_FAIL else OK


def get_rework_rules(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`client get-rework-rules POOL`."""
    with connected(args) as client:
        try:
            reply: pb.GetReworkRulesResponse = client.stub.GetReworkRules(
                pb.GetReworkRulesRequest(pool_id=args.pool_id),
                metadata=client.metadata,
                timeout=client.timeout,
            )
        except grpc.RpcError as e:
            return fail(e, err, args)
    if args.json:
        print(summary.dumps(summary.to_json(reply)), file=out)
    else:
        print("\n".join(summary.rule_lines(list(reply.rules))), file=out)
    return OK


def set_rework_rules(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`client set-rework-rules POOL FILE`: FILE is `{"rules": [...]}` in the proto JSON mapping."""
    try:
        text, name = read_text(args.file)
        rules = parse_rules(text, name=name)
    except TaskFileError as e:
        return _usage(e, err)
    request = pb.SetReworkRulesRequest(
        pool_id=args.pool_id,
        rules=rules.rules,
        refuse_if_open=args.refuse_if_open,
        operation_id=args.operation_id or "",
    )
    with connected(args) as client:
        try:
            reply: pb.SetReworkRulesResponse = client.stub.SetReworkRules(
                request, metadata=client.metadata, timeout=client.timeout
            )
        except grpc.RpcError as e:
            return fail(e, err, args)
    if args.json:
        print(summary.dumps(summary.to_json(reply)), file=out)
    else:
        state = "changed" if reply.changed else "unchanged (the pool already had these rules)"
        lines = [f"pool {args.pool_id}: {state}" + (" (replayed)" if reply.replayed else "")]
        print("\n".join(lines + summary.rule_lines(list(reply.rules))), file=out)
    return OK


Command = Callable[[argparse.Namespace, TextIO, TextIO], int]


def run(
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    *,
    more: Mapping[str, Command] | None = None,
) -> int:
    """Run the parsed `client` subcommand (`more`: commands defined in other modules)."""
    commands: dict[str, Command] = {
        "create-tasks": create_tasks,
        "wait": wait,
        "get-rework-rules": get_rework_rules,
        "set-rework-rules": set_rework_rules,
        **(more or {}),
    }
    try:
        return commands[args.client_command](args, out, err)
    except ClientSetupError as e:  # raised before the first call: nothing was sent
        print(f"toloka-gateway client: {e}", file=err)
        return USAGE
