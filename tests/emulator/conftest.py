"""Fixtures: an emulator on a free port with a manual clock, and an authenticated aiohttp session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.emulator import EmulatorServer, EmulatorState

AUTH = {"Authorization": "OAuth test-token"}


class ManualClock:
    """A clock that moves only when told."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def state(clock: ManualClock) -> EmulatorState:
    return EmulatorState(clock=clock, operation_duration_s=0.0, pool_operation_duration_s=0.0)


@pytest.fixture
async def emu(state: EmulatorState) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(state) as server:
        yield server


@pytest.fixture
async def http(emu: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(emu.url, headers=AUTH) as session:
        yield session
