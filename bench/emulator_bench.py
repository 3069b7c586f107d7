"""Emulator benchmark: 100,000 tasks in one open pool, finished by the simulated crowd on the emulator's clock.

Two runs of `toloka-gateway emulator` as a subprocess, each fed the same requests over HTTP:
- baseline: the crowd switched off; create the tasks (async, 20 batches of 5,000), open the pool, read it;
- crowd: the same, then the clock moves a simulated hour per control call until the crowd has finished
  every task and the pool closed as COMPLETED.
Each run then pages through all 100,000 items by id as toloka-kit does (tasks in the baseline,
assignments in the crowd run). Reported: each run's wall time and the emulator's peak RSS (VmHWM), the crowd run as ratios against the
baseline, and how many simulated seconds pass per wall second (Toloka itself needs the simulated time).

    python -m bench emulator          # prints JSON
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.proc_status import memory_kib
from tests.support.redis_servers import free_port

TASKS = 100_000
BATCH = 5_000
PERFORMERS = 100
LATENCY_S = 60.0
STEP_S = 3600.0
AUTH = {"Authorization": "OAuth bench"}


async def _create_tasks(s: aiohttp.ClientSession, pool_id: str) -> None:
    for start in range(0, TASKS, BATCH):
        batch = [
            {"pool_id": pool_id, "input_values": {"image": f"https://e.x/{n}.png"}, "overlap": 1}
            for n in range(start, start + BATCH)
        ]
        url = f"/api/v1/tasks?async_mode=true&operation_id={uuid.uuid4()}"
        async with s.post(url, json=batch, headers=AUTH) as resp:
            assert resp.status == 202, await resp.text()


async def _page_all(s: aiohttp.ClientSession, resource: str) -> tuple[int, float]:
    """Page through every item of pool 1 as toloka-kit's get_* does (sort=id, id_gt), 1,000 a page."""
    started = time.perf_counter()
    count, last = 0, ""
    while True:
        bound = f"&id_gt={last}" if last else ""
        async with s.get(f"/api/v1/{resource}?pool_id=1&sort=id&limit=1000{bound}", headers=AUTH) as resp:
            page = await resp.json()
        count += len(page["items"])
        if not page["has_more"]:
            return count, time.perf_counter() - started
        last = page["items"][-1]["id"]


async def _workload(url: str, crowd: bool) -> dict[str, Any]:
    async with aiohttp.ClientSession(url) as s:
        await s.post("/_emulator/config", json={"instant_operations": True})
        settings = {"performers": PERFORMERS, "latency_s": LATENCY_S}
        await s.post("/_emulator/crowd", json={"enabled": crowd, "seed": 1, "defaults": settings})
        started = time.perf_counter()
        await _create_tasks(s, "1")
        async with s.post("/api/v1/pools/1/open", headers=AUTH) as resp:
            assert resp.status == 202, await resp.text()
        simulated, pool = 0.0, {}
        while True:
            async with s.get("/api/v1/pools/1", headers=AUTH) as resp:
                pool = await resp.json()
            if not crowd or pool["status"] != "OPEN":
                break
            await s.post("/_emulator/clock/advance", json={"seconds": STEP_S})
            simulated += STEP_S
        wall = time.perf_counter() - started
        async with s.get("/api/v1/assignments?pool_id=1&sort=-id&limit=1", headers=AUTH) as resp:
            newest = (await resp.json())["items"]
        listed, list_s = await _page_all(s, "assignments" if crowd else "tasks")
    assert listed == TASKS, listed
    return {"wall_s": wall, "simulated_s": simulated, "pool": pool, "newest": newest, "list_s": list_s}


def _run(crowd: bool) -> dict[str, Any]:
    port = free_port()
    script = Path(sys.executable).with_name("toloka-gateway")
    with subprocess.Popen(
        [str(script), "emulator", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None and "serving" in proc.stdout.readline()
            result = asyncio.run(_workload(f"http://127.0.0.1:{port}", crowd))
            result["peak_rss_mib"] = round(memory_kib(proc.pid) / 1024, 1)
        finally:
            proc.terminate()
            proc.wait(10)
    return result


def run() -> dict[str, Any]:
    """Both runs and their ratios."""
    base = _run(crowd=False)
    with_crowd = _run(crowd=True)
    pool = with_crowd["pool"]
    assert (pool["status"], pool.get("last_close_reason")) == ("CLOSED", "COMPLETED"), pool
    assert with_crowd["newest"] and with_crowd["newest"][0]["status"] == "ACCEPTED"
    return {
        "tasks": TASKS,
        "performers": PERFORMERS,
        "latency_s": LATENCY_S,
        "baseline_wall_s": round(base["wall_s"], 2),
        "baseline_peak_rss_mib": base["peak_rss_mib"],
        "crowd_wall_s": round(with_crowd["wall_s"], 2),
        "crowd_peak_rss_mib": with_crowd["peak_rss_mib"],
        "crowd_simulated_hours": round(with_crowd["simulated_s"] / 3600, 1),
        "wall_ratio_vs_baseline": round(with_crowd["wall_s"] / base["wall_s"], 2),
        "rss_ratio_vs_baseline": round(with_crowd["peak_rss_mib"] / base["peak_rss_mib"], 2),
        "simulated_s_per_wall_s": round(with_crowd["simulated_s"] / with_crowd["wall_s"]),
        "baseline_page_all_tasks_s": round(base["list_s"], 2),
        "crowd_page_all_assignments_s": round(with_crowd["list_s"], 2),
        "paging_ratio_assignments_vs_tasks": round(with_crowd["list_s"] / base["list_s"], 2),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
