"""Two gateway processes on one real Redis: a toloka-kit flood stays inside the account limit, and a
50 MB page streams through a gateway without a 50 MB copy in its memory."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.rest.conftest import AUTH_CONFIG, GATEWAY_KEY, TOKENS, run_kit, write_tokens
from tests.support.gateway_harness import GatewayProcess, write_config
from tests.support.redis_servers import RedisServer, free_port

pytestmark = pytest.mark.slow

ACCOUNT_LIMIT = 10
FLOOD_CONFIG = f"""
[rate_limits]
max_wait = "1s"
limits = [{{ name = "account_per_second", kinds = ["*"], capacity = {ACCOUNT_LIMIT}, period = "1s" }}]
"""


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    state = EmulatorState()
    state.valid_api_keys = {GATEWAY_KEY}
    async with EmulatorServer(state) as emu:
        yield emu


async def start_fleet(
    emulator: EmulatorServer, tmp_path: Path, redis_url: str, size: int, config: str = ""
) -> list[tuple[GatewayProcess, str]]:
    """`size` gateway processes with their REST fronts; returns each with its REST URL."""
    fleet = []
    for _ in range(size):
        rest_port = free_port()
        env = {
            "TOLOKA_URL": emulator.url,
            "TOLOKA_API_KEY": GATEWAY_KEY,
            "REDIS_URL": redis_url,
            "GATEWAY_CONFIG": write_config(tmp_path, AUTH_CONFIG + config),
            "GATEWAY_AUTH_TOKENS_FILE": write_tokens(tmp_path),
            "GATEWAY_REST_LISTEN": f"127.0.0.1:{rest_port}",
        }
        fleet.append((GatewayProcess(env=env).start(tmp_path), f"http://127.0.0.1:{rest_port}"))
    await asyncio.gather(*(proc.wait_serving() for proc, _ in fleet))
    return fleet


# The limiter's bound holds at admission (one Redis clock); a request reaches Toloka a little later,
# by how long its process takes to send it (measured here under a flood on 2 shared, busy cores:
# 10 to 60 ms). Arrivals are checked in windows that much shorter than the limit's second; two
# replicas each keeping their own limit would still put twice the limit in such a window.
SEND_JITTER_S = 0.1


def most_in_one_window(times: list[float], window_s: float) -> int:
    """The most requests that arrived within any window of `window_s`."""
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_flood_from_two_gateways_stays_inside_the_account_limit_when_toloka_kit_floods(
    emulator: EmulatorServer, tmp_path: Path, redis_proc: RedisServer, kit_python: Path
) -> None:
    redis_proc.cli("FLUSHALL")
    fleet = await start_fleet(emulator, tmp_path, redis_proc.url, 2, FLOOD_CONFIG)
    try:
        # Warm each gateway (code paths, its connection to Toloka) before the flood is timed.
        await asyncio.gather(*(run_kit(kit_python, url, TOKENS["writer"], "sync", "get") for _, url in fleet))
        await asyncio.sleep(1.0)  # the warm-up requests leave the 1 s window (not a synchronisation)
        results = await asyncio.gather(
            *(
                run_kit(kit_python, url, TOKENS["writer"], mode, "flood", "8", "5")
                for (_, url), mode in zip(fleet, ("sync", "async"), strict=True)
            )
        )
        logs = "".join(proc.logs() for proc, _ in fleet)
    finally:
        for proc, _ in fleet:
            proc.stop()
    assert [r["requests"] for r in results] == [40, 40]
    arrivals = [r.monotonic for r in emulator.state.requests if r.path == "/api/v1/pools/1"]
    assert len(arrivals) == 82
    most = most_in_one_window(arrivals, 1.0 - SEND_JITTER_S)
    gaps_ms = [round((b - a) * 1000) for a, b in zip(sorted(arrivals), sorted(arrivals)[1:], strict=False)]
    assert most <= ACCOUNT_LIMIT, f"{most} arrivals in {1.0 - SEND_JITTER_S} s; gaps (ms): {gaps_ms}"
    # Some callers waited longer than the gateway waits: they got its 429 and toloka-kit retried.
    assert '"status":"429"' in logs


def page_tasks(count: int, size: int) -> list[dict[str, object]]:
    return [
        {"pool_id": "1", "input_values": {"image": f"https://example.com/{i}.png", "pad": "x" * size}}
        for i in range(count)
    ]


def reset_peak_kb(pid: int) -> int:
    """Reset the process's peak memory to its current size (Linux clear_refs 5); returns it."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return peak_kb(pid)


def peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_a_50_mb_page_streams_through_without_a_copy_when_a_caller_reads_it(
    emulator: EmulatorServer, tmp_path: Path, redis_proc: RedisServer
) -> None:
    key = {"Authorization": f"OAuth {GATEWAY_KEY}"}
    async with aiohttp.ClientSession() as s:
        for _ in range(56):  # 56 x 9 tasks of ~100 KB: ~50 MB of tasks in pool 1
            body = io.BytesIO(orjson.dumps(page_tasks(9, 100_000)))
            params = {"allow_defaults": "true"}
            headers = {**key, "Content-Type": "application/json"}
            async with s.post(f"{emulator.url}/api/v1/tasks", data=body, params=params, headers=headers) as r:
                assert r.status == 201, await r.text()
    [(proc, url)] = await start_fleet(emulator, tmp_path, redis_proc.url, 1)
    try:
        assert proc.process is not None
        auth = {"Authorization": f"OAuth {TOKENS['writer']}"}
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/api/v1/tasks", params={"pool_id": "1", "limit": "5"}, headers=auth) as r:
                assert r.status == 200  # warm: imports, connections
            before = reset_peak_kb(proc.process.pid)
            received = 0
            async with s.get(
                f"{url}/api/v1/tasks", params={"pool_id": "1", "limit": "1000"}, headers=auth
            ) as r:
                assert r.status == 200
                async for chunk in r.content.iter_chunked(1 << 16):
                    received += len(chunk)
            growth_mb = (peak_kb(proc.process.pid) - before) / 1024
    finally:
        proc.stop()
    assert received > 50 * 1_000_000
    print(
        json.dumps({"streamed_mb": round(received / 1e6, 1), "gateway_peak_growth_mb": round(growth_mb, 1)})
    )
    assert growth_mb < 10, (
        f"the gateway's peak memory grew {growth_mb:.1f} MB while relaying {received} bytes"
    )
