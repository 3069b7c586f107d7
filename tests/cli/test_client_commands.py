"""`toloka-gateway client ...` as people and scripts use it: output, progress and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.emulator.server import EmulatorServer
from tests.cli.conftest import run_cli
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

TWO_TASKS = '{"input_values": {"image": "https://example.com/a.png"}}\n{"input_values": {"image": "b"}, "overlap": 2}\n'


def target_of(gw: InProcessGateway) -> str:
    return f"127.0.0.1:{gw.gateway.port}"


def task_posts(emulator: EmulatorServer) -> list[object]:
    return [r for r in emulator.state.requests if r.method == "POST" and r.path == "/api/v1/tasks"]


async def test_create_tasks_with_wait_prints_summary_and_progress_when_file_is_json_lines(
    gw: InProcessGateway, tmp_path: Path
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(TWO_TASKS)

    result = await run_cli(
        "create-tasks", str(tasks), "--pool-id", "1", "--wait", "--allow-defaults", target=target_of(gw)
    )

    assert result.code == 0, result.err
    assert "created 2 task(s)" in result.out
    assert "(TASK.BATCH_CREATE): SUCCESS, 100%" in result.out
    assert "100% SUCCESS" in result.err  # the progress bar (one line per change when not a terminal)


async def test_create_tasks_prints_json_when_asked_for_scripts(gw: InProcessGateway) -> None:
    array = json.dumps([{"input_values": {"n": 1}}, {"input_values": {"n": 2}, "overlap": 1}])
    operation_id = "3f1c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90"

    result = await run_cli(
        "create-tasks", "-", "--pool-id", "1", "--sync", "--allow-defaults", "--json",
        "--operation-id", operation_id, target=target_of(gw), stdin=array,
    )  # fmt: skip

    assert result.code == 0, result.err
    reply = json.loads(result.out)["create"]
    assert reply["operation_id"] == operation_id
    assert sorted(reply["batch"]["items"]) == ["0", "1"]
    assert reply["batch"]["items"]["1"]["pool_id"] == "1"


async def test_bad_task_file_names_the_line_and_sends_nothing_when_a_line_is_not_json(
    gw: InProcessGateway, emulator: EmulatorServer, tmp_path: Path
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(TWO_TASKS + '{"input_values": {"image": "c"}\n')

    result = await run_cli("create-tasks", str(tasks), "--pool-id", "1", target=target_of(gw))

    assert result.code == 2
    assert f"{tasks} line 3: not valid JSON" in result.err
    assert result.out == ""
    assert task_posts(emulator) == []


async def test_bad_task_file_names_the_array_index_when_a_task_has_an_unknown_field(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    array = json.dumps([{"input_values": {"n": 1}}, {"input_values": {"n": 2}, "overlapp": 2}])

    result = await run_cli("create-tasks", "-", "--pool-id", "1", target=target_of(gw), stdin=array)

    assert result.code == 2
    assert "<stdin> [1]: unknown task field 'overlapp'" in result.err
    assert task_posts(emulator) == []


async def test_call_error_prints_code_reason_and_field_violations_when_toloka_refuses(
    gw: InProcessGateway,
) -> None:
    # Synchronous creation without overlap and without allow_defaults: Toloka's validation refuses it.
    result = await run_cli(
        "create-tasks",
        "-",
        "--pool-id",
        "1",
        "--sync",
        target=target_of(gw),
        stdin='{"input_values": {"n": 1}}\n',
    )

    assert result.code == 1
    assert "INVALID_ARGUMENT: " in result.err
    assert "reason: VALIDATION_ERROR (domain toloka-gateway)" in result.err
    assert "toloka_request_id: " in result.err
    assert "field tasks[0].overlap: " in result.err


async def test_rate_limited_call_prints_retry_after_and_quota_when_caller_quota_is_spent(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    quota = """
[rate_limits]
max_wait = "0s"
callers = {cli-tests = [{name = "create_tasks_per_minute", kinds = ["create_tasks"], capacity = 1, period = "1m"}]}
"""
    gw = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, quota))
    try:
        env = {"GATEWAY_CALLER": "cli-tests"}
        args = ("create-tasks", "-", "--pool-id", "1", "--allow-defaults")
        first = await run_cli(*args, target=target_of(gw), stdin=TWO_TASKS, env=env)
        second = await run_cli(*args, target=target_of(gw), stdin=TWO_TASKS, env=env)
        other_caller = await run_cli(*args, "--caller", "someone-else", target=target_of(gw), stdin=TWO_TASKS)
    finally:
        await gw.close()

    assert first.code == 0, first.err
    assert second.code == 1
    assert "RESOURCE_EXHAUSTED: " in second.err
    assert "retry after: " in second.err
    assert "quota caller:cli-tests/create_tasks_per_minute: " in second.err
    assert other_caller.code == 0, other_caller.err
    assert len(task_posts(emulator)) == 2


async def test_wait_prints_state_and_log_of_an_operation(gw: InProcessGateway) -> None:
    created = await run_cli(
        "create-tasks",
        "-",
        "--pool-id",
        "1",
        "--allow-defaults",
        "--json",
        target=target_of(gw),
        stdin=TWO_TASKS,
    )
    operation_id = json.loads(created.out)["create"]["operation_id"]

    result = await run_cli("wait", operation_id, "--log", target=target_of(gw))
    malformed = await run_cli("wait", "not-a-uuid", target=target_of(gw))

    assert result.code == 0, result.err
    assert f"operation {operation_id} (TASK.BATCH_CREATE): SUCCESS, 100%" in result.out
    assert "created 2 task(s)" in result.out
    assert malformed.code == 1
    assert "field operation_id: must be a UUID" in malformed.err


async def test_rework_rules_round_trip_through_get_json_and_set(gw: InProcessGateway, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"restriction": {}, "delta": 1}]}))

    set_result = await run_cli("set-rework-rules", "1", str(rules), target=target_of(gw))
    got = await run_cli("get-rework-rules", "1", "--json", target=target_of(gw))
    readable = await run_cli("get-rework-rules", "1", target=target_of(gw))
    again = await run_cli("set-rework-rules", "1", "-", target=target_of(gw), stdin=got.out)

    assert set_result.code == 0, set_result.err
    assert "pool 1: changed" in set_result.out
    assert json.loads(got.out) == {"rules": [{"restriction": {}, "delta": 1}]}
    assert readable.out.strip() == "1. Toloker blocked (restriction): overlap +1"
    assert again.code == 0, again.err
    assert "unchanged" in again.out


async def test_set_rework_rules_refuses_a_bad_rules_file_without_calling(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    result = await run_cli(
        "set-rework-rules", "1", "-", target=target_of(gw), stdin='{"rules": [{"delta": "x"}]}'
    )

    assert result.code == 2
    assert "<stdin>: Failed to parse" in result.err
    assert not [r for r in emulator.state.requests if r.path.startswith("/api/v1/pools")]


async def test_unreachable_gateway_is_a_call_error() -> None:
    result = await run_cli("get-rework-rules", "1", "--timeout", "2", target="127.0.0.1:1")

    assert result.code == 1
    assert "UNAVAILABLE: " in result.err
