"""A real gateway in front of the emulator, served from a background event loop for the whole module.

Hypothesis drives plain (synchronous) test functions, so the gateway runs on its own loop in a thread
and the tests call it over real gRPC with a blocking channel.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

T = TypeVar("T")


@dataclass
class ServedGateway:
    """A gateway served from a background loop, and a blocking channel to it."""

    loop: asyncio.AbstractEventLoop
    handle: InProcessGateway
    channel: grpc.Channel

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)
    thread.start()
    config = write_config(Path(tmp_path_factory.mktemp("fuzz")))

    async def up() -> tuple[EmulatorServer, InProcessGateway]:
        emulator = EmulatorServer(EmulatorState(operation_duration_s=0.3, pool_operation_duration_s=0.01))
        await emulator.start()
        return emulator, await start_gateway(toloka_url=emulator.url, config_path=config)

    emulator, handle = asyncio.run_coroutine_threadsafe(up(), loop).result(30)
    channel = grpc.insecure_channel(f"127.0.0.1:{handle.gateway.port}")
    served = ServedGateway(loop=loop, handle=handle, channel=channel)
    try:
        yield served
    finally:
        channel.close()
        served.run(handle.close())
        served.run(emulator.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
