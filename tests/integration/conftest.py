"""A real emulator over HTTP and a real gateway over gRPC, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    """The Toloka emulator on a free port, operations finishing after 0.3 s."""
    async with EmulatorServer(EmulatorState(operation_duration_s=0.3, pool_operation_duration_s=0.05)) as emu:
        yield emu


@pytest.fixture
async def gw(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    """A gateway with in-process state in front of the emulator."""
    handle = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path))
    yield handle
    await handle.close()
