"""proto -> Toloka JSON for 10,000 tasks: the gateway against toloka-kit 1.2.3, and peak memory.

toloka-kit needs httpx<0.28 and cattrs<24, so it gets its own virtualenv (bench/.toloka-kit-venv,
made on first use). Both sides serialise the same tasks; each figure is the best of several runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.translate.tasks import plan_create_tasks
from gateway.translate.values import json_to_struct

TASKS = 10_000
RUNS = 5
KIT_VENV = Path(__file__).parent / ".toloka-kit-venv"
KIT_PACKAGES = ["toloka-kit==1.2.3", "httpx==0.27.2", "cattrs==23.2.3", "setuptools<81"]

KIT_SCRIPT = """
import json, sys, time
from toloka.client import Task, unstructure
rows = json.load(open(sys.argv[1]))
best = None
for _ in range(int(sys.argv[2])):
    tasks = [Task(pool_id=r["pool_id"], input_values=r["input_values"], overlap=r["overlap"],
                  known_solutions=[Task.KnownSolution(output_values=k["output_values"],
                                                      correctness_weight=k["correctness_weight"])
                                   for k in r.get("known_solutions", [])])
             for r in rows]
    started = time.perf_counter()
    body = json.dumps(unstructure(tasks))
    took = time.perf_counter() - started
    best = took if best is None else min(best, took)
print(json.dumps({"seconds": best, "bytes": len(body)}))
"""


def sample_rows(count: int = TASKS) -> list[dict[str, Any]]:
    """Small realistic tasks; every tenth is a control task with a known solution."""
    rows: list[dict[str, Any]] = []
    for i in range(count):
        row: dict[str, Any] = {
            "pool_id": "1",
            "input_values": {"image": f"https://example.com/img/{i}.png", "text": f"item {i}", "rank": i},
            "overlap": 3,
        }
        if i % 10 == 0:
            row["known_solutions"] = [{"output_values": {"label": "cat"}, "correctness_weight": 1.0}]
        rows.append(row)
    return rows


def request_from(rows: list[dict[str, Any]]) -> pb.CreateTasksRequest:
    """The same rows as a CreateTasks request."""
    req = pb.CreateTasksRequest(operation_id="3f1c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90")
    for row in rows:
        task = req.tasks.add(pool_id=row["pool_id"], overlap=row["overlap"])
        json_to_struct(row["input_values"], task.input_values)
        for known in row.get("known_solutions", []):
            sol = task.known_solutions.add(correctness_weight=known["correctness_weight"])
            json_to_struct(known["output_values"], sol.output_values)
    return req


def gateway_seconds(req: pb.CreateTasksRequest) -> float:
    """Best time of validation + JSON body + fingerprint for the request."""
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        plan_create_tasks(req, max_tasks=TASKS)
        best = min(best, time.perf_counter() - started)
    return best


def ensure_kit_venv() -> Path:
    """The toloka-kit virtualenv's python, created on first use."""
    python = KIT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(KIT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *KIT_PACKAGES], check=True)
    return python


def kit_seconds(rows: list[dict[str, Any]]) -> float:
    """Best time of toloka-kit's `unstructure` + `json.dumps` for the same tasks."""
    python = ensure_kit_venv()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(rows, f)
    out = subprocess.run(
        [str(python), "-c", KIT_SCRIPT, f.name, str(RUNS)], check=True, capture_output=True, text=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


MEMORY_SCRIPT = """
import json, sys
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.translate.tasks import plan_create_tasks

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

data = open(sys.argv[1], "rb").read()
req = pb.CreateTasksRequest.FromString(data)
del data
plan_create_tasks(pb.CreateTasksRequest(tasks=[req.tasks[0]]), max_tasks=10)  # warm imports and caches
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
plan = plan_create_tasks(req, max_tasks=10_000)
peak = status("VmHWM")
print(json.dumps({"payload_bytes": req.ByteSize(), "body_bytes": len(plan.body),
                  "rss_before_kib": before, "peak_rss_kib": peak, "growth_kib": peak - before}))
"""


def memory(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak RSS growth while translating one 10,000-task request, in copies of its protobuf payload.

    A fresh process parses the request from bytes, resets its RSS high-water mark, translates,
    and reads the new high-water mark (Linux /proc).
    """
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(request_from(rows).SerializeToString())
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, f.name],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    data: dict[str, Any] = json.loads(out.stdout)
    data["growth_in_payload_copies"] = round(data["growth_kib"] * 1024 / data["payload_bytes"], 2)
    return data


def run(rounds: int = 5) -> dict[str, Any]:
    """Translation speed ratio (target >= 3x) and memory.

    Both sides are timed in alternating rounds (best of RUNS each). The headline ratio compares
    each side's best time over all rounds, as `timeit` advises (the minimum is the run the
    machine disturbed least; on a shared VM single runs of either side vary up to 2x); the
    per-round ratios are reported too.
    """
    rows = sample_rows()
    req = request_from(rows)
    ours_runs, kit_runs = [], []
    for _ in range(rounds):
        ours_runs.append(gateway_seconds(req))
        kit_runs.append(kit_seconds(rows))
    ours, kit = min(ours_runs), min(kit_runs)
    return {
        "tasks": TASKS,
        "gateway_seconds": round(ours, 4),
        "toloka_kit_seconds": round(kit, 4),
        "speedup_vs_toloka_kit": round(kit / ours, 2),
        "speedup_per_round": [round(k / o, 2) for o, k in zip(ours_runs, kit_runs, strict=True)],
        "target_speedup": 3.0,
        "memory": memory(rows),
    }
