"""The CLI runs as a real subprocess against a real gateway (in-process, on a real port) and emulator."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

# The same emulator and gateway fixtures as the integration suite.
from tests.integration.conftest import emulator, gw

__all__ = ["CliResult", "emulator", "gw", "run_cli"]


@dataclass(frozen=True)
class CliResult:
    """Exit code and output of one `python -m gateway client ...`."""

    code: int
    out: str
    err: str


async def run_cli(
    *args: str, target: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> CliResult:
    """Run the command without blocking the event loop (the gateway and emulator serve from it)."""
    full_env = {**os.environ, "GATEWAY_TARGET": target, **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "client",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
    )
    out, err = await asyncio.wait_for(
        proc.communicate(stdin.encode() if stdin is not None else None), timeout=30
    )
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())
