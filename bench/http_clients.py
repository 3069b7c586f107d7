"""The HTTP client choice, measured: POST /api/v1/tasks to the emulator with 32 concurrent requests.

Compares aiohttp (what the gateway uses) with stock httpx.AsyncClient on the same loop.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp
import httpx

from gateway import event_loop
from tests.support.redis_servers import free_port

CONCURRENCY = 32
BODY = b'[{"pool_id":"1","input_values":{"image":"https://example.com/1.png"},"overlap":1}]'
HEADERS = {"Authorization": "OAuth bench", "Content-Type": "application/json"}


async def _drive(post: Any, seconds: float) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await post()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


async def _aiohttp_rate(url: str, seconds: float) -> float:
    async with aiohttp.ClientSession(headers=HEADERS) as session:

        async def post() -> None:
            params = {"async_mode": "true", "operation_id": str(uuid.uuid4())}
            async with session.post(url, params=params, data=BODY) as resp:
                await resp.read()

        await _drive(post, 0.5)
        return await _drive(post, seconds)


async def _httpx_rate(url: str, seconds: float) -> float:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(headers=HEADERS, limits=limits) as client:

        async def post() -> None:
            params = {"async_mode": "true", "operation_id": str(uuid.uuid4())}
            (await client.post(url, params=params, content=BODY)).read()

        await _drive(post, 0.5)
        return await _drive(post, seconds)


def run(seconds: float = 4.0) -> dict[str, Any]:
    """Requests/s of each client against one emulator process."""
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "gateway", "emulator", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert emulator.stdout is not None and emulator.stdout.readline()
        url = f"http://127.0.0.1:{port}/api/v1/tasks"
        aio = event_loop.run(_aiohttp_rate(url, seconds))
        hx = event_loop.run(_httpx_rate(url, seconds))
    finally:
        emulator.kill()
        emulator.wait()
    return {
        "aiohttp_requests_per_s": round(aio),
        "httpx_requests_per_s": round(hx),
        "aiohttp_to_httpx_ratio": round(aio / hx, 2),
    }
