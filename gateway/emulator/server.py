"""Running the emulator as a real HTTP server: `EmulatorServer` for tests, `run_forever` for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from types import TracebackType

from aiohttp import web

from gateway import event_loop
from gateway.emulator.app import create_app
from gateway.emulator.crowd_control import load_crowd_config
from gateway.emulator.heap import keep_collector_off_stored_state
from gateway.emulator.state import EmulatorState

_log = logging.getLogger(__name__)


class EmulatorServer:
    """`async with EmulatorServer() as emu:` serves the emulator on a free port; `emu.url` is the base URL."""

    def __init__(self, state: EmulatorState | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state if state is not None else EmulatorState()
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """`http://HOST:PORT` without a trailing slash; clients append `/api/v1/...`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving."""
        # A stopping emulator does not wait for stalled requests (fault latencies) to finish.
        runner = web.AppRunner(
            create_app(self.state), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])

    async def stop(self) -> None:
        """Stop serving and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def parse_listen(listen: str) -> tuple[str, int]:
    """Split `HOST:PORT` (or `[v6]:PORT`) into host and port."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


async def serve(listen: str, state: EmulatorState | None = None) -> None:
    """Serve until SIGINT or SIGTERM."""
    host, port = parse_listen(listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with EmulatorServer(state, host=host, port=port) as emu:
        print(
            f"toloka emulator serving {emu.url} (base URL; API under /api/v1, control under /_emulator)",
            flush=True,
        )
        await stop.wait()


def run_forever(listen: str, crowd_config: str | None = None) -> None:
    """Blocking entry point for `toloka-gateway emulator --listen HOST:PORT`: one info log line per
    request on stderr (unless logging is already configured); `crowd_config` names a crowd config file
    (the JSON of `POST /_emulator/crowd`)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    state = EmulatorState()
    keep_collector_off_stored_state(state)  # this process is the emulator's own
    if crowd_config:
        load_crowd_config(state, crowd_config)
    event_loop.run(serve(listen, state))
