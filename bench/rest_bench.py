"""The REST front against a direct call to the same emulator, side by side in one run.

    requests/s   32 concurrent GET /api/v1/pools/1: direct to the emulator, and through the REST front;
                 with the CPU per request of the emulator (direct) and of the gateway (front)
    latency      one request at a time: p50 / p99 direct and through the front; the difference is
                 what the front adds (auth, the limiter's decision, the relay)
    streaming    a ~50 MB GET /api/v1/tasks page through the front: how much the gateway's peak
                 memory grows while relaying it (a buffered relay would grow by the page)

The emulator and the gateway run as their own processes (in-process state; a limit high enough
never to bind), the load from this one. Targets: at least half the direct throughput, at most
1 ms added at p50, and flat memory while streaming.
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.load import count_calls
from bench.proc_status import cpu_seconds, memory_kib, reset_peak
from gateway import event_loop
from tests.support.redis_servers import free_port

CONCURRENCY = 32
KEY = "bench-key"
CONFIG = """
[rate_limits]
limits = [{ name = "account_per_second", kinds = ["*"], capacity = 1000000, period = "1s" }]
"""


def _emulator() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "emulator", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stdout.readline()
    return proc, f"http://127.0.0.1:{port}"


def _gateway(emulator_url: str, config: str) -> tuple[subprocess.Popen[bytes], str]:
    rest_port = free_port()
    env = {
        **os.environ,
        "TOLOKA_URL": emulator_url,
        "TOLOKA_API_KEY": KEY,
        "GATEWAY_LISTEN": f"127.0.0.1:{free_port()}",
        "GATEWAY_REST_LISTEN": f"127.0.0.1:{rest_port}",
        "GATEWAY_CONFIG": config,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{rest_port}"


async def _until_serving(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(f"{url}/api/v1/pools/1", headers={"Authorization": "OAuth x"}) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} is not serving")


async def _rate(url: str, seconds: float, pid: int | None = None) -> tuple[float, float]:
    """Requests/s, and the CPU microseconds process `pid` spent per request meanwhile (0 without one)."""
    cpu = cpu_seconds(pid) if pid is not None else 0.0
    done, took = await _count(url, seconds)
    spent = cpu_seconds(pid) - cpu if pid is not None else 0.0
    return done / took, spent / done * 1e6


async def _count(url: str, seconds: float) -> tuple[int, float]:
    headers = {"Authorization": f"OAuth {KEY}"}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as s:

        async def get() -> None:
            async with s.get(f"{url}/api/v1/pools/1") as r:
                await r.read()

        return await count_calls(get, seconds, CONCURRENCY)


async def _latencies(url: str, count: int) -> list[float]:
    out: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"OAuth {KEY}"}) as s:
        for _ in range(count):
            started = time.perf_counter()
            async with s.get(f"{url}/api/v1/pools/1") as r:
                await r.read()
            out.append((time.perf_counter() - started) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def _seed_pages(emulator_url: str, megabytes: int) -> None:
    """~`megabytes` MB of tasks in pool 1 (batches of 9 tasks of ~100 KB)."""
    headers = {"Authorization": f"OAuth {KEY}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as s:
        for batch in range(megabytes * 10 // 9 + 1):
            tasks = [
                {
                    "pool_id": "1",
                    "input_values": {"image": f"https://e.com/{batch}/{i}", "pad": "x" * 100_000},
                }
                for i in range(9)
            ]
            params = {"allow_defaults": "true"}
            async with s.post(
                f"{emulator_url}/api/v1/tasks", data=io.BytesIO(orjson.dumps(tasks)), params=params
            ) as r:
                assert r.status == 201, await r.text()


async def _stream(url: str, pid: int) -> dict[str, float]:
    async with aiohttp.ClientSession(headers={"Authorization": f"OAuth {KEY}"}) as s:
        params = {"pool_id": "1", "limit": "1000"}
        reset_peak(pid)
        before = memory_kib(pid)
        received = 0
        started = time.perf_counter()
        async with s.get(f"{url}/api/v1/tasks", params=params) as r:
            async for chunk in r.content.iter_chunked(1 << 16):
                received += len(chunk)
        took = time.perf_counter() - started
        growth = memory_kib(pid) - before
    return {
        "streamed_mb": round(received / 1e6, 1),
        "stream_mb_per_s": round(received / 1e6 / took, 1),
        "gateway_peak_growth_mb": round(growth / 1024, 1),
    }


async def _measure(emulator: tuple[str, int], gateway: tuple[str, int], seconds: float) -> dict[str, Any]:
    (emulator_url, emulator_pid), (gateway_url, gateway_pid) = emulator, gateway
    await _until_serving(gateway_url)
    await _rate(emulator_url, 0.5)  # warm both paths
    await _rate(gateway_url, 0.5)
    direct_rps, emulator_us = await _rate(emulator_url, seconds, emulator_pid)
    front_rps, gateway_us = await _rate(gateway_url, seconds, gateway_pid)
    direct_ms = await _latencies(emulator_url, 1000)
    front_ms = await _latencies(gateway_url, 1000)
    await _seed_pages(emulator_url, 50)
    added_p50 = _p(front_ms, 50) - _p(direct_ms, 50)
    stream = await _stream(gateway_url, gateway_pid)
    return {
        "direct_requests_per_s": round(direct_rps),
        "rest_front_requests_per_s": round(front_rps),
        "throughput_ratio": round(front_rps / direct_rps, 2),
        # Machine-independent: what one relayed request costs the gateway against what answering it
        # costs the emulator (a small pool from memory).
        "gateway_cpu_us_per_request": round(gateway_us),
        "emulator_cpu_us_per_request": round(emulator_us),
        "direct_p50_ms": round(_p(direct_ms, 50), 3),
        "direct_p99_ms": round(_p(direct_ms, 99), 3),
        "added_p50_ms": round(added_p50, 3),
        "added_p99_ms": round(_p(front_ms, 99) - _p(direct_ms, 99), 3),
        **stream,
        "targets_met": front_rps >= 0.5 * direct_rps
        and added_p50 <= 1.0
        and stream["gateway_peak_growth_mb"] < 10,
    }


def run(seconds: float = 4.0) -> dict[str, Any]:
    """The REST front's throughput, added latency and streaming memory against direct calls."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(CONFIG)
    emulator, emulator_url = _emulator()
    gateway, gateway_url = _gateway(emulator_url, f.name)
    try:
        return event_loop.run(_measure((emulator_url, emulator.pid), (gateway_url, gateway.pid), seconds))
    finally:
        for proc in (gateway, emulator):
            proc.kill()
            proc.wait()
        Path(f.name).unlink()
