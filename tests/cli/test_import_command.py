"""`client import-tasks`: a JSON-lines file streamed through ImportTasks, re-run safely, stopped at a bad line."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from gateway.emulator.server import EmulatorServer
from tests.cli.conftest import run_cli
from tests.support.gateway_harness import InProcessGateway


def target_of(gw: InProcessGateway) -> str:
    return f"127.0.0.1:{gw.gateway.port}"


def task_posts(emulator: EmulatorServer) -> list[str]:
    return [
        r.operation_id for r in emulator.state.requests if r.method == "POST" and r.path == "/api/v1/tasks"
    ]


def write_tasks(path: Path, count: int, bad_line: int | None = None) -> Path:
    lines = [
        json.dumps({"input_values": {"image": f"https://example.com/{n}.png"}, "overlap": 1})
        for n in range(count)
    ]
    if bad_line is not None:
        lines[bad_line - 1] = '{"input_values": {"image": "x"}'
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_import_streams_a_file_in_batches_and_a_rerun_with_its_id_sends_nothing_again(
    gw: InProcessGateway, emulator: EmulatorServer, tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 2_500)
    first = await run_cli(
        "import-tasks", str(tasks), "--pool-id", "1", "--batch-size", "1000", target=target_of(gw)
    )
    assert first.code == 0, first.err
    operation_id = first.out.splitlines()[0].removeprefix("operation_id ")
    assert str(uuid.UUID(operation_id)) == operation_id  # printed first, before anything else
    assert "3 batches: 2500 tasks sent, 0 replayed" in first.out
    assert "2500/2500 tasks (batch 2 accepted)" in first.err  # the bar, one line per batch off a terminal
    assert len(task_posts(emulator)) == 3

    again = await run_cli(
        "import-tasks", str(tasks), "--pool-id", "1", "--batch-size", "1000", "--operation-id", operation_id,
        "--json", target=target_of(gw),
    )  # fmt: skip
    assert again.code == 0, again.err
    reply = json.loads(again.out)
    assert reply["summary"] == {"batches": 3, "tasks_replayed": 2500, "complete": True}
    assert [b["replayed"] for b in reply["batches"]] == [True, True, True]
    assert len(task_posts(emulator)) == 3


async def test_a_bad_line_stops_the_import_there_and_names_it(
    gw: InProcessGateway, emulator: EmulatorServer, tmp_path: Path
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 2_500, bad_line=2_200)
    result = await run_cli(
        "import-tasks", str(tasks), "--pool-id", "1", "--batch-size", "1000", target=target_of(gw)
    )
    assert result.code == 2
    assert (
        f"{tasks} line 2200: not valid JSON" in result.err and "nothing from there on was sent" in result.err
    )
    assert "Traceback" not in result.err
    assert len(task_posts(emulator)) <= 2  # batches 0 and 1 may have gone; batch 2 (line 2001..) never
