"""A first call: create two tasks through a running gateway, wait for them, print the replies as JSON
(the same JSON as `toloka-gateway client create-tasks --json`: Toloka's names and types).

python -m gateway.examples.create_tasks --target 127.0.0.1:50051 --pool-id 1
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc
from google.protobuf import duration_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.cli.summary import dumps, to_json


async def main(target: str, pool_id: str, caller: str) -> int:
    """Send CreateTasks, then WaitOperation with the log, and print both."""
    request = pb.CreateTasksRequest(allow_defaults=True)
    for i in (1, 2):
        task = request.tasks.add(pool_id=pool_id)
        task.input_values.update({"image": f"https://example.com/{i}.png"})
    metadata = (("x-caller-id", caller),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.TolokaGatewayStub(channel)  # type: ignore[no-untyped-call]
        try:
            created = await stub.CreateTasks(request, metadata=metadata, timeout=30)
            print(dumps(to_json(created)))
            waited = await stub.WaitOperation(
                pb.WaitOperationRequest(
                    operation_id=created.operation_id,
                    timeout=duration_pb2.Duration(seconds=20),
                    include_log=True,
                ),
                metadata=metadata,
                timeout=30,
            )
            print(dumps(to_json(waited)))
        except grpc.aio.AioRpcError as e:
            print(f"{e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--pool-id", default="1")
    parser.add_argument("--caller", default="example")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.target, args.pool_id, args.caller)))
