"""`toloka-gateway emulator` as a real subprocess, toloka-kit 1.2.3 in its own virtualenv, and a gateway.

toloka-kit's virtualenv is the one the translation benchmark builds (`bench.translation.ensure_kit_venv`,
created on first use).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.translation import ensure_kit_venv
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config
from tests.support.redis_servers import free_port

WORKFLOW = Path(__file__).with_name("kit_workflow.py")


@pytest.fixture(scope="session")
def kit_python() -> Path:
    """The python of toloka-kit's virtualenv."""
    return ensure_kit_venv()


@pytest.fixture
def emulator_url() -> Iterator[str]:
    """`toloka-gateway emulator` on a free port, its operations instant and its crowd seeded with 42."""
    port = free_port()
    script = Path(sys.executable).with_name("toloka-gateway")
    proc = subprocess.Popen(
        [str(script), "emulator", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving" in line, line
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
async def seeded(emulator_url: str) -> str:
    """The emulator with instant operations and crowd seed 42."""
    async with aiohttp.ClientSession(emulator_url) as s:
        (await s.post("/_emulator/config", json={"instant_operations": True})).raise_for_status()
        (await s.post("/_emulator/crowd", json={"seed": 42})).raise_for_status()
    return emulator_url


@pytest.fixture
async def gateway(seeded: str, tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    """A gateway in front of the emulator subprocess."""
    handle = await start_gateway(toloka_url=seeded, config_path=write_config(tmp_path))
    yield handle
    await handle.close()


async def run_phase(kit_python: Path, url: str, mode: str, phase: str, state_path: Path) -> dict[str, Any]:
    """Run one phase of the toloka-kit workflow; fails the test with its output when a check fails."""
    proc = await asyncio.create_subprocess_exec(
        str(kit_python),
        str(WORKFLOW),
        url,
        mode,
        phase,
        str(state_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()[-4000:]
    result: dict[str, Any] = json.loads(await asyncio.to_thread(state_path.read_text))
    return result
