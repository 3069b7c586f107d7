"""Fixtures: an emulator on a free port with a manual clock, and an authenticated aiohttp session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.emulator import EmulatorServer, EmulatorState
from tests.support.clock import ManualClock

AUTH = {"Authorization": "OAuth test-token"}


@pytest.fixture
def clock() -> ManualClock:
    """The emulator's wall clock (epoch seconds), moved only by the test."""
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def state(clock: ManualClock) -> EmulatorState:
    return EmulatorState(clock=clock.now, operation_duration_s=0.0, pool_operation_duration_s=0.0)


@pytest.fixture
async def emu(state: EmulatorState) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(state) as server:
        yield server


@pytest.fixture
async def http(emu: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(emu.url, headers=AUTH) as session:
        yield session
