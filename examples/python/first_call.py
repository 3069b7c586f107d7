"""Create two tasks through a running toloka-gateway, wait for them, and print the outcome as JSON.

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python first_call.py

Options: --target HOST:PORT (env GATEWAY_TARGET, default 127.0.0.1:50051), --pool-id ID (default 1).
The stubs are generated from the repository's protos/ into a temporary directory at start-up. The JSON is
what `toloka-gateway client wait ID --log --json` prints: Toloka's names and types ("status": "SUCCESS",
integer counts).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2, json_format
from grpc_tools import protoc

PROTO = Path(__file__).resolve().parents[2] / "protos/gateway/api/toloka/gateway/v1/gateway.proto"
TASKS = [
    {"image": "https://example.com/1.png"},
    {"image": "https://example.com/2.png"},
]


def load_stubs() -> tuple[Any, Any]:
    """gateway_pb2 and gateway_pb2_grpc, generated into a temporary directory under a name of their own."""
    work = Path(tempfile.mkdtemp(prefix="toloka-gateway-stubs-"))
    (work / "proto" / "gateway_stubs").mkdir(parents=True)
    shutil.copy(PROTO, work / "proto" / "gateway_stubs" / "gateway.proto")
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{work / 'proto'}",
        f"-I{well_known}",
        f"--python_out={work}",
        f"--grpc_python_out={work}",
    ]
    if protoc.main([*args, "gateway_stubs/gateway.proto"]) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")
    sys.path.insert(0, str(work))
    return importlib.import_module("gateway_stubs.gateway_pb2"), importlib.import_module(
        "gateway_stubs.gateway_pb2_grpc"
    )


def toloka_json(value: Any, key: str = "") -> Any:
    """Toloka's types: statuses without the enum prefix, whole numbers as integers."""
    if isinstance(value, dict):
        return {k: toloka_json(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [toloka_json(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if key == "status" and isinstance(value, str):
        return value.removeprefix("OPERATION_STATUS_")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default=os.environ.get("GATEWAY_TARGET", "127.0.0.1:50051"))
    parser.add_argument("--pool-id", default="1")
    args = parser.parse_args()
    pb, pb_grpc = load_stubs()

    # A client-chosen operation_id makes a retried call safe: the gateway creates the tasks once.
    request = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()), allow_defaults=True)
    for values in TASKS:
        request.tasks.add(pool_id=args.pool_id).input_values.update(values)
    metadata = (("x-caller-id", "example-python"),)
    with grpc.insecure_channel(args.target) as channel:
        stub = pb_grpc.TolokaGatewayStub(channel)
        try:
            stub.CreateTasks(request, metadata=metadata, timeout=30)
            waited = stub.WaitOperation(
                pb.WaitOperationRequest(
                    operation_id=request.operation_id,
                    timeout=duration_pb2.Duration(seconds=50),
                    include_log=True,
                ),
                metadata=metadata,
                timeout=60,
            )
        except grpc.RpcError as e:
            print(f"{e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    print(
        json.dumps(toloka_json(json_format.MessageToDict(waited, preserving_proto_field_name=True)), indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
