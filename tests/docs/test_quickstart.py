"""docs/quickstart.md, executed: every ```sh block runs, in order, and what the page says it prints is checked.

The block with `make run` starts in the background at the repository root (on a free port: the other
blocks reach it through GATEWAY_TARGET, as `client --help` documents). The other blocks run in one bash
session, as in the reader's second terminal: in a scratch directory whose `.venv` is the repository's.
A ```text block right after a ```sh block is its expected output (operation ids and ports aside); a
"prints `X`" in the prose after a block is checked too.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.gateway_harness import GatewayProcess
from tests.support.redis_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "quickstart.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\n", re.S | re.M)
MARK = "@@quickstart-block-{}@@"


@dataclass
class Block:
    """A fenced block, and what follows it up to the next block."""

    lang: str
    body: str
    after: str
    expected: str | None = None  # the ```text block that follows


def page_blocks(text: str) -> list[Block]:
    found = list(FENCE.finditer(text))
    blocks = []
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        blocks.append(Block(match.group(1), match.group(2), text[match.end() : end]))
    for block, following in itertools.pairwise(blocks):
        if block.lang == "sh" and following.lang == "text":
            block.expected = following.body
    return [b for b in blocks if b.lang == "sh"]


def normal(text: str) -> list[str]:
    """Lines with UUIDs and local ports made alike."""
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    return [line.rstrip() for line in text.strip().splitlines()]


def promised(after: str) -> list[str]:
    """What the prose after a block says it prints."""
    return re.findall(r"prints `([^`]+)`", after)


def session_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TOLOKA_API_KEY", "TOLOKA_URL", "REDIS_URL")}
    for name in ("VIRTUAL_ENV", "MAKEFLAGS", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    target = f"127.0.0.1:{port}"
    return {**env, "GATEWAY_LISTEN": target, "GATEWAY_TARGET": target, "GATEWAY_SHUTDOWN_DELAY": "0s"}


def check_start_lines(block: Block, log: str) -> None:
    messages = [json.loads(line)["msg"] for line in log.splitlines() if line.startswith("{")]
    assert block.expected is not None
    expected = normal(block.expected)
    assert messages[0].startswith(expected[0].split(" on ")[0] + " on ")
    assert normal("\n".join(messages[1:3])) == expected[1:3]


def run_session(blocks: list[Block], cwd: Path, env: dict[str, str]) -> list[str]:
    """Every block in one bash session; returns each block's stdout."""
    script = ["set -euo pipefail"]
    for i, block in enumerate(blocks):
        script += [f"echo '{MARK.format(i)}'", block.body]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"a quickstart block failed:\n{done.stdout}\n{done.stderr}"
    parts = re.split(r"^@@quickstart-block-\d+@@\n", done.stdout, flags=re.M)
    return parts[1:]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    blocks = page_blocks(PAGE.read_text())
    assert [b.body.strip() for b in blocks[:1]] == ["make run"]
    port = free_port()
    env = session_env(port)
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        make = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        await GatewayProcess(env={}, port=port, process=make, log_path=log).wait_serving(within_s=120)
        check_start_lines(blocks[0], log.read_text())
        (tmp_path / ".venv").symlink_to(ROOT / ".venv")
        outputs = run_session(blocks[1:], tmp_path, env)
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(30)

    assert len(outputs) == len(blocks) - 1
    for block, output in zip(blocks[1:], outputs, strict=True):
        if block.expected is not None:
            assert normal(output) == normal(block.expected), f"{block.body}\nprinted:\n{output}"
        for text in promised(block.after):
            assert text in output, f"{block.body}\ndoes not print {text!r}:\n{output}"
    assert "1 passed" in outputs[-1]
