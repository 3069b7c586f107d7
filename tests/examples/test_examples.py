"""examples/python, examples/node and examples/go, each run by its one-line command against a live gateway.

Each prints the WaitOperation reply as JSON; it must equal what `toloka-gateway client wait ID --log --json`
prints for the same operation, byte for byte once parsed: one JSON shape in Toloka's names and types.
"""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from importlib import metadata
from typing import Any

from tests.cli.conftest import run_cli
from tests.examples.conftest import EXAMPLES
from tests.support.gateway_harness import InProcessGateway


def target_of(gw: InProcessGateway) -> str:
    return f"127.0.0.1:{gw.gateway.port}"


async def run_example(*command: str, cwd: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, f"{command} exited {proc.returncode}:\n{err.decode()}"
    return dict(json.loads(out))


async def assert_same_as_cli(reply: dict[str, Any], gw: InProcessGateway) -> None:
    operation = reply["operation"]
    assert operation["status"] == "SUCCESS" and reply["done"] is True
    assert type(operation["details"]["total_count"]) is int and operation["details"]["total_count"] == 2
    assert sorted(reply["log"]["items"]) == ["0", "1"]
    cli = await run_cli("wait", operation["id"], "--log", "--json", target=target_of(gw))
    assert cli.code == 0, cli.err
    assert reply == json.loads(cli.out)


async def test_python_example_prints_what_the_cli_prints(gw: InProcessGateway) -> None:
    reply = await run_example(
        sys.executable, "first_call.py", "--target", target_of(gw), cwd=str(EXAMPLES / "python")
    )
    await assert_same_as_cli(reply, gw)


def distribution_of(module: str) -> str | None:
    """The installed distribution that holds `module` (a namespace like `google` has several), or None."""
    top = module.split(".", maxsplit=1)[0]
    if top in sys.stdlib_module_names:
        return None
    prefix = module.replace(".", "/") + "/"
    for name in metadata.packages_distributions().get(top, []):
        files = metadata.distribution(name).files or []
        if any(str(f).startswith(prefix) or str(f) == f"{module}.py" for f in files):
            return name.lower()
    return None


def test_python_example_requirements_name_every_package_it_imports() -> None:
    tree = ast.parse((EXAMPLES / "python" / "first_call.py").read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    needed = {d for d in map(distribution_of, modules) if d is not None}
    listed = {
        line.split(">")[0].split("=")[0].strip().lower()
        for line in (EXAMPLES / "python" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert needed == listed


async def test_node_example_prints_what_the_cli_prints(gw: InProcessGateway, node_example: str) -> None:
    reply = await run_example(
        node_example, "first_call.mjs", "--target", target_of(gw), cwd=str(EXAMPLES / "node")
    )
    await assert_same_as_cli(reply, gw)


async def test_go_example_prints_what_the_cli_prints(gw: InProcessGateway, go_toolchain: None) -> None:
    reply = await run_example("./run.sh", "--target", target_of(gw), cwd=str(EXAMPLES / "go"))
    await assert_same_as_cli(reply, gw)


async def test_packaged_python_example_prints_the_cli_json(gw: InProcessGateway) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.examples.create_tasks", "--target", target_of(gw),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    created, end = json.JSONDecoder().raw_decode(text)
    waited = json.loads(text[end:])

    assert "operation_id" in created and "operationId" not in created
    await assert_same_as_cli(waited, gw)


async def test_node_import_example_streams_tasks_and_a_rerun_creates_nothing_twice(
    gw: InProcessGateway, node_example: str
) -> None:
    operation_id = "5d3c9e2a-7b41-4f0e-9c6d-1a2b3c4d5e6f"
    command = (node_example, "import_tasks.mjs", "--target", target_of(gw), "--count", "2500")
    first = await run_example(*command, "--operation-id", operation_id, cwd=str(EXAMPLES / "node"))
    assert first == {
        "operation_id": operation_id,
        "summary": {
            "batches": 3,
            "tasks_sent": 2500,
            "tasks_replayed": 0,
            "complete": True,
            "next_task_index": 0,
        },
    }
    again = await run_example(*command, "--operation-id", operation_id, cwd=str(EXAMPLES / "node"))
    assert again["summary"]["tasks_sent"] == 0 and again["summary"]["tasks_replayed"] == 2500
