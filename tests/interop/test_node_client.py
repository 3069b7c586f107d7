"""A Node.js client (@grpc/grpc-js + @grpc/proto-loader, tests/interop/client.mjs) against a real gateway.

The Node script loads `protos/` itself, so these tests prove the contract is usable from another
language: plain calls, Struct input, a Duration, include_log, a oneof trigger, and the rich error
trailer `grpc-status-details-bin` decoded as google.rpc.Status with its details.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import google.rpc.status_pb2

from gateway.emulator.server import EmulatorServer
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "interop" / "client.mjs"
# gateway.proto, then google/rpc/*.proto as shipped by googleapis-common-protos (a runtime dependency).
INCLUDE_DIRS = [
    str(ROOT / "protos" / "gateway" / "api"),
    str(Path(google.rpc.status_pb2.__file__).resolve().parents[2]),
]
TINY_LIMIT = """
[rate_limits]
limits = [{name = "create_tasks_per_minute", kinds = ["create_tasks"], capacity = 1, period = "1m"}]
max_wait = "0s"
"""


async def run_node(node: str, scenario: str, target: str) -> dict[str, Any]:
    """Run the Node client (off the event loop's thread, so the gateway keeps serving) and parse its JSON."""
    arg = json.dumps({"scenario": scenario, "target": target, "pool_id": "1", "include_dirs": INCLUDE_DIRS})
    proc = await asyncio.create_subprocess_exec(
        node,
        "--no-warnings",
        str(SCRIPT),
        arg,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, f"node exited {proc.returncode}:\n{err.decode()}"
    return dict(json.loads(out))


def target_of(gw: InProcessGateway) -> str:
    return f"127.0.0.1:{gw.gateway.port}"


async def test_node_client_creates_waits_sets_rules_and_decodes_bad_request(
    node: str, gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    out = await run_node(node, "calls", target_of(gw))

    create = out["create"]
    assert create["ok"], create
    assert create["reply"]["operation_id"] == out["sent_operation_id"]
    assert create["reply"]["result"] == "operation"
    assert create["reply"]["operation"]["type"] == "TASK.BATCH_CREATE"

    wait = out["wait"]
    assert wait["ok"], wait
    assert wait["reply"]["done"] is True
    assert wait["reply"]["operation"]["status"] == "OPERATION_STATUS_SUCCESS"
    items = wait["reply"]["log"]["items"]
    assert sorted(items) == ["0", "1"]
    assert all(item["id"] and item["pool_id"] == "1" for item in items.values())

    empty = out["empty_create"]
    assert not empty["ok"]
    error = empty["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["status_code"] == 3
    assert error["details"]["ErrorInfo"]["domain"] == "toloka-gateway"
    violations = error["details"]["BadRequest"]["field_violations"]
    assert [(v["field"], v["reason"]) for v in violations] == [("tasks", "REQUIRED")]

    rules = out["set_rework_rules"]
    assert rules["ok"], f"SetReworkRules from Node failed: {rules}"
    assert rules["reply"]["changed"] is True
    assert [r["trigger"] for r in rules["reply"]["rules"]] == ["restriction"]
    assert rules["reply"]["rules"][0]["delta"] == 1
    assert emulator.state.pools["1"]["quality_control"]["configs"], "the rule reached the pool"


async def test_node_client_decodes_retry_info_and_quota_failure_when_rate_limited(
    node: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    gw = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, TINY_LIMIT))
    try:
        out = await run_node(node, "rate_limit", target_of(gw))
    finally:
        await gw.close()

    assert out["first"]["ok"], out["first"]
    error = out["second"]["error"]
    assert error["code"] == "RESOURCE_EXHAUSTED"
    assert error["details"]["ErrorInfo"]["domain"] == "toloka-gateway"
    delay = error["details"]["RetryInfo"]["retry_delay"]
    assert 0 < delay["seconds"] + delay["nanos"] / 1e9 <= 75  # about one 1-minute window
    subjects = [v["subject"] for v in error["details"]["QuotaFailure"]["violations"]]
    assert any("create_tasks_per_minute" in s for s in subjects), subjects
    posts = [r for r in emulator.state.requests if r.method == "POST" and r.path == "/api/v1/tasks"]
    assert len(posts) == 1
