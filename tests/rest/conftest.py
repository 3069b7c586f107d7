"""The REST front over real HTTP: the emulator (accepting only the gateway's key), a gateway with token
auth and its REST listener on a free port, and toloka-kit 1.2.3 in its own virtualenv."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.translation import ensure_kit_venv
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

GATEWAY_KEY = "gateway-key-9f3e1c77"
TOKENS = {"writer": "writer-token-5d1a", "reader": "reader-token-77b2", "pool4": "pool4-token-c3e0"}
KIT_REST = Path(__file__).with_name("kit_rest.py")
AUTH_CONFIG = """
[rest]
max_body_bytes = 1048576
[auth]
mode = "token"
require_known_callers = true
[auth.callers.writer]
methods = ["*"]
[auth.callers.reader]
methods = ["GetOperation"]
rest = ["GET"]
[auth.callers.pool4]
pools = ["4"]
"""


@dataclass
class Front:
    """A gateway's REST front and the emulator behind it."""

    gateway: InProcessGateway
    emulator: EmulatorServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.gateway.rest_port}"

    def auth(self, caller: str = "writer") -> dict[str, str]:
        return {"Authorization": f"OAuth {TOKENS[caller]}"}

    async def emulator_requests(self, path: str = "/api/v1") -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{self.emulator.url}/_emulator/requests", params={"path": path}) as r,
        ):
            data = await r.json()
        return list(data["requests"] if isinstance(data, dict) else data)


def write_tokens(directory: Path) -> str:
    path = directory / "tokens.toml"
    path.write_text("".join(f'{caller} = "{token}"\n' for caller, token in TOKENS.items()))
    return str(path)


async def start_front(
    tmp_path: Path, emulator: EmulatorServer, extra_config: str = "", redis_url: str = ""
) -> InProcessGateway:
    """A gateway with token auth and its REST front on a free port."""
    return await start_gateway(
        toloka_url=emulator.url,
        config_path=write_config(tmp_path, AUTH_CONFIG + extra_config),
        redis_url=redis_url,
        env={
            "TOLOKA_API_KEY": GATEWAY_KEY,
            "GATEWAY_REST_LISTEN": "127.0.0.1:0",
            "GATEWAY_AUTH_TOKENS_FILE": write_tokens(tmp_path),
        },
    )


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    """The emulator, accepting the gateway's key only; task batches finish after 0.2 s."""
    state = EmulatorState(operation_duration_s=0.2, pool_operation_duration_s=0.05)
    state.valid_api_keys = {GATEWAY_KEY}
    async with EmulatorServer(state) as emu:
        yield emu


@pytest.fixture
async def front(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[Front]:
    gw = await start_front(tmp_path, emulator)
    yield Front(gw, emulator)
    await gw.close()


@pytest.fixture(scope="session")
def kit_python() -> Path:
    """The python of toloka-kit's virtualenv (the one the translation benchmark builds)."""
    return ensure_kit_venv()


async def run_kit(
    kit_python: Path, url: str, token: str, mode: str, scenario: str, *args: str
) -> dict[str, Any]:
    """Run one toloka-kit scenario; fails the test with its output when a check fails."""
    proc = await asyncio.create_subprocess_exec(
        str(kit_python),
        str(KIT_REST),
        url,
        token,
        mode,
        scenario,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()[-4000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result
