"""Bulk import: N small tasks through ImportTasks, against toloka-kit's create_tasks_async loop.

One `toloka-gateway emulator` process (instant operations, no crowd, reset between runs) serves both:

- baseline: toloka-kit 1.2.3 (its own virtualenv, as in the translation bench) sends the tasks straight
  to the emulator as `create_tasks_async` calls of 10,000 tasks each, one after another;
- gateway: a `toloka-gateway serve` process (task limits raised out of the way) in front of the same
  emulator; this process streams the same tasks through ImportTasks in chunks of 1,000.

Reported: tasks/s of each and their ratio, and the gateway's RSS growth against one batch's JSON
payload: from serving to the end (VmHWM minus VmRSS), and over the import alone after a first import of
two batches has loaded what any import loads once (the peak's growth). `IMPORT_BENCH_TASKS` sets N (default 1,000,000).

    python -m bench import_tasks
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from bench.proc_status import memory_kib
from bench.translation import ensure_kit_venv
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.support.redis_servers import free_port

TASKS = int(os.environ.get("IMPORT_BENCH_TASKS", "1000000"))
BATCH = 10_000
CHUNK = 1_000

KIT_SCRIPT = """
import sys, time, uuid
from toloka.client import Task, TolokaClient
url, count, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = TolokaClient("bench-key", url=url, retries=0)
started = time.perf_counter()
for start in range(0, count, batch):
    tasks = [Task(pool_id="1", overlap=1, input_values={"image": f"https://example.com/{n}.png"})
             for n in range(start, min(start + batch, count))]
    client.create_tasks_async(tasks, operation_id=str(uuid.uuid4()), allow_defaults=True)
print(time.perf_counter() - started)
"""


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def _requests(count: int) -> Iterator[pb.ImportTasksRequest]:
    yield pb.ImportTasksRequest(options=pb.ImportTasksOptions(operation_id=str(uuid.uuid4())))
    for start in range(0, count, CHUNK):
        chunk = pb.TaskChunk()
        for n in range(start, min(start + CHUNK, count)):
            task = chunk.tasks.add(pool_id="1", overlap=1)
            task.input_values.update({"image": f"https://example.com/{n}.png"})
        yield pb.ImportTasksRequest(chunk=chunk)


async def _import(target: str, count: int) -> pb.ImportSummary:
    summary = pb.ImportSummary()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.TolokaGatewayStub(channel)
        async for reply in stub.ImportTasks(_requests(count), timeout=3600):
            if reply.WhichOneof("part") == "summary":
                summary = reply.summary
    return summary


def _gateway(emulator_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TOLOKA_URL": emulator_url,
        "TOLOKA_API_KEY": "bench-key",
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "GATEWAY_CREATE_TASKS_PER_MINUTE": "1000000000",
        "GATEWAY_CREATE_TASKS_PER_DAY": "1000000000",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "gateway", "serve"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _serving(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)


def _gateway_run(emulator_url: str) -> dict[str, Any]:
    port = free_port()
    with _gateway(emulator_url, port) as proc:
        try:
            asyncio.run(_serving(f"127.0.0.1:{port}"))
            rss_serving = memory_kib(proc.pid, "VmRSS")
            # A first import of two batches loads what any import loads once (code, buffers).
            asyncio.run(_import(f"127.0.0.1:{port}", 2 * BATCH))
            warm_peak = memory_kib(proc.pid, "VmHWM")
            started = time.perf_counter()
            summary = asyncio.run(_import(f"127.0.0.1:{port}", TASKS))
            seconds = time.perf_counter() - started
            peak = memory_kib(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(30)
    assert summary.complete and summary.tasks_sent == TASKS, summary
    return {
        "seconds": seconds,
        "rss_growth_kib": peak - rss_serving,
        "growth_after_warm_up_kib": peak - warm_peak,
    }


def _kit_run(emulator_url: str) -> float:
    python = ensure_kit_venv()
    out = subprocess.run(
        [str(python), "-c", KIT_SCRIPT, emulator_url, str(TASKS), str(BATCH)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _batch_payload_bytes() -> int:
    items = [
        {"pool_id": "1", "overlap": 1, "input_values": {"image": f"https://example.com/{n}.png"}}
        for n in range(BATCH)
    ]
    return len(json.dumps(items, separators=(",", ":")))


def run() -> dict[str, Any]:
    """Both runs against one emulator process; the figures and the ratios."""
    port = free_port()
    script = Path(sys.executable).with_name("toloka-gateway")
    command = [str(script), "emulator", "--listen", f"127.0.0.1:{port}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as emulator:
        try:
            assert emulator.stdout is not None and "serving" in emulator.stdout.readline()
            url = f"http://127.0.0.1:{port}"
            setup = {"instant_operations": True}
            _post(f"{url}/_emulator/config", setup)
            _post(f"{url}/_emulator/crowd", {"enabled": False})
            kit_s = _kit_run(url)
            _post(f"{url}/_emulator/reset", {})
            _post(f"{url}/_emulator/config", setup)
            _post(f"{url}/_emulator/crowd", {"enabled": False})
            gateway = _gateway_run(url)
        finally:
            emulator.terminate()
            emulator.wait(30)
    payload = _batch_payload_bytes()
    return {
        "tasks": TASKS,
        "toloka_kit_tasks_per_s": round(TASKS / kit_s),
        "import_tasks_per_s": round(TASKS / gateway["seconds"]),
        "import_vs_toloka_kit": round(kit_s / gateway["seconds"], 2),
        "gateway_rss_growth_mib": round(gateway["rss_growth_kib"] / 1024, 1),
        "gateway_peak_growth_after_a_warm_up_import_mib": round(
            gateway["growth_after_warm_up_kib"] / 1024, 1
        ),
        "one_batch_payload_mib": round(payload / 1_048_576, 2),
        "rss_growth_vs_one_batch": round(gateway["rss_growth_kib"] * 1024 / payload, 2),
        "growth_after_warm_up_vs_one_batch": round(gateway["growth_after_warm_up_kib"] * 1024 / payload, 2),
    }
