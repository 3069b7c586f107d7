"""What `client create-tasks` prints on the common paths, in order: the operation_id first, then the
progress (stderr), then the summary; Toloka's JSON; Ctrl-C naming the command that resumes; hints."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.cli.conftest import run_cli
from tests.cli.snapshot import assert_snapshot
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

TWO_TASKS = '{"input_values": {"image": "a"}}\n{"input_values": {"image": "b"}, "overlap": 2}\n'
OPERATION_ID = "3f1c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90"


def target_of(gw: InProcessGateway) -> str:
    return f"127.0.0.1:{gw.gateway.port}"


async def test_wait_prints_the_operation_id_first_and_the_final_state_once(gw: InProcessGateway) -> None:
    result = await run_cli(
        "create-tasks", "-", "--pool-id", "1", "--allow-defaults", "--wait", "--operation-id", OPERATION_ID,
        target=target_of(gw), stdin=TWO_TASKS,
    )  # fmt: skip

    assert result.code == 0, result.err
    assert_snapshot("create-tasks-wait.txt", result.out)
    progress = result.err.splitlines()
    assert progress[-1] == "[##############################] 100% SUCCESS"
    assert all(line.startswith("[") for line in progress), result.err


async def test_no_wait_prints_the_operation_and_the_command_that_follows_it(gw: InProcessGateway) -> None:
    result = await run_cli(
        "create-tasks", "-", "--pool-id", "1", "--allow-defaults", "--operation-id", OPERATION_ID,
        target=target_of(gw), stdin=TWO_TASKS,
    )  # fmt: skip

    assert result.code == 0, result.err
    assert_snapshot("create-tasks-no-wait.txt", result.out)
    assert result.err == ""


async def test_json_uses_toloka_status_names_and_integer_counts(gw: InProcessGateway) -> None:
    result = await run_cli(
        "create-tasks", "-", "--pool-id", "1", "--allow-defaults", "--wait", "--json",
        "--operation-id", OPERATION_ID, target=target_of(gw), stdin=TWO_TASKS,
    )  # fmt: skip

    assert result.code == 0, result.err
    reply = json.loads(result.out)
    assert result.err.splitlines()[0] == f"operation_id {OPERATION_ID}"
    assert reply["create"]["operation"]["status"] == "PENDING"
    final = reply["wait"]["operation"]
    assert final["status"] == "SUCCESS"
    assert final["progress"] == 100
    assert final["details"]["total_count"] == 2 and type(final["details"]["total_count"]) is int
    assert sorted(reply["wait"]["log"]["items"]) == ["0", "1"]


@pytest.fixture
async def slow_gw(tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    """A gateway whose emulator takes a minute per operation."""
    async with EmulatorServer(EmulatorState(operation_duration_s=60)) as emu:
        handle = await start_gateway(toloka_url=emu.url, config_path=write_config(tmp_path))
        yield handle
        await handle.close()


async def test_ctrl_c_during_wait_prints_the_command_that_resumes_it(slow_gw: InProcessGateway) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "client", "create-tasks", "-", "--pool-id", "1", "--allow-defaults",
        "--wait", "--operation-id", OPERATION_ID, "--target", target_of(slow_gw),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(TWO_TASKS.encode())
    proc.stdin.close()
    first = await asyncio.wait_for(proc.stdout.readline(), 30)
    bar = await asyncio.wait_for(proc.stderr.readline(), 30)  # the wait has begun
    proc.send_signal(signal.SIGINT)
    rest, err = await asyncio.wait_for(proc.communicate(), 30)

    assert first.decode() == f"operation_id {OPERATION_ID}\n"
    assert b"PENDING" in bar
    assert proc.returncode == 130
    assert f"operation {OPERATION_ID} goes on" in err.decode()
    assert f"\n  toloka-gateway client wait {OPERATION_ID}\n" in err.decode()
    assert "Traceback" not in err.decode()
    assert rest == b""


async def test_missing_overlap_suggests_allow_defaults(gw: InProcessGateway) -> None:
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
    assert result.err.splitlines()[-1] == (
        'hint: tasks without overlap: give each task an "overlap", or pass --allow-defaults to take the '
        "pool's default overlap"
    )


async def test_unreachable_gateway_suggests_starting_it() -> None:
    result = await run_cli("get-rework-rules", "1", "--timeout", "5", target="127.0.0.1:1")

    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        "hint: no gateway answers at 127.0.0.1:1: start one with `make run` (in the repository) or "
        "`toloka-gateway serve`, or point --target / GATEWAY_TARGET at a running one"
    )


async def test_ctrl_c_during_client_wait_prints_the_command_that_resumes_it(
    slow_gw: InProcessGateway,
) -> None:
    created = await run_cli(
        "create-tasks", "-", "--pool-id", "1", "--allow-defaults", "--operation-id", OPERATION_ID,
        target=target_of(slow_gw), stdin=TWO_TASKS,
    )  # fmt: skip
    assert created.code == 0, created.err
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "client", "wait", OPERATION_ID, "--target", target_of(slow_gw),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    started = await asyncio.wait_for(proc.stderr.readline(), 30)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)

    assert started.decode() == (
        f"waiting for operation {OPERATION_ID} (at most 60 s; Ctrl-C stops the wait, not the operation)\n"
    )
    assert proc.returncode == 130
    assert f"\n  toloka-gateway client wait {OPERATION_ID}\n" in err.decode()
    assert "Traceback" not in err.decode() and out == b""
