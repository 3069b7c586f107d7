"""The HTTP client choice, measured: POST /api/v1/tasks to the emulator with 32 concurrent requests.

Compares the gateway's own `Http1Pool` (gateway/toloka/http1.py) with aiohttp's ClientSession and
stock httpx.AsyncClient on the same loop: requests/s, and the client's CPU per request (the figure
that decides how much a gateway process can relay, whatever the emulator costs).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp
import httpx

from bench.load import count_calls
from gateway import event_loop
from gateway.toloka.http1 import Http1Pool
from tests.support.redis_servers import free_port

CONCURRENCY = 32
BODY = b'[{"pool_id":"1","input_values":{"image":"https://example.com/1.png"},"overlap":1}]'
HEADERS = {"Authorization": "OAuth bench"}
JSON = {"Content-Type": "application/json"}


async def _drive(post: Any, seconds: float) -> tuple[float, float]:
    """Requests/s and this process's CPU microseconds per request."""
    cpu = time.process_time()
    done, took = await count_calls(post, seconds, CONCURRENCY)
    return done / took, (time.process_time() - cpu) / done * 1e6


async def _http1_rate(url: str, seconds: float) -> tuple[float, float]:
    pool = Http1Pool(url.removesuffix("/tasks"), max_connections=100, headers=HEADERS)

    async def post() -> None:
        target = f"{pool.prefix}/tasks?async_mode=true&operation_id={uuid.uuid4()}"
        resp = await pool.request("POST", target, body=BODY, content_type="application/json")
        try:
            await resp.read()
        finally:
            resp.release()

    try:
        await _drive(post, 0.5)
        return await _drive(post, seconds)
    finally:
        await pool.close()


async def _aiohttp_rate(url: str, seconds: float) -> tuple[float, float]:
    async with aiohttp.ClientSession(headers=HEADERS) as session:

        async def post() -> None:
            params = {"async_mode": "true", "operation_id": str(uuid.uuid4())}
            async with session.post(url, params=params, data=BODY, headers=JSON) as resp:
                await resp.read()

        await _drive(post, 0.5)
        return await _drive(post, seconds)


async def _httpx_rate(url: str, seconds: float) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(headers=HEADERS, limits=limits) as client:

        async def post() -> None:
            params = {"async_mode": "true", "operation_id": str(uuid.uuid4())}
            (await client.post(url, params=params, content=BODY, headers=JSON)).read()

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
        own, own_cpu = event_loop.run(_http1_rate(url, seconds))
        aio, aio_cpu = event_loop.run(_aiohttp_rate(url, seconds))
        hx, hx_cpu = event_loop.run(_httpx_rate(url, seconds))
    finally:
        emulator.kill()
        emulator.wait()
    return {
        "http1_pool_requests_per_s": round(own),
        "aiohttp_requests_per_s": round(aio),
        "httpx_requests_per_s": round(hx),
        "http1_pool_cpu_us_per_request": round(own_cpu),
        "aiohttp_cpu_us_per_request": round(aio_cpu),
        "httpx_cpu_us_per_request": round(hx_cpu),
        "aiohttp_to_http1_pool_cpu_ratio": round(aio_cpu / own_cpu, 2),
        "aiohttp_to_httpx_ratio": round(aio / hx, 2),
    }
