"""CreateTasks calls/s through the gateway against a bare grpc.aio echo server, side by side.

Both servers run as their own processes on this machine; one client process drives 32
concurrent callers over one channel for a fixed time. The emulator is the Toloka upstream.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc

from bench.load import count_calls
from gateway import event_loop
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from tests.support.gateway_harness import GatewayProcess
from tests.support.redis_servers import free_port

CONCURRENCY = 32
ECHO_METHOD = "/bench.Echo/Echo"
UNLIMITED = """
[rate_limits]
limits = [{name = "bench_unlimited", kinds = ["*"], capacity = 100000000, period = "1s"}]
"""

# The same unlimited budget in two accounts of one gateway, both on the one emulator: the cost of
# choosing a call's account (and of one stack per account) against the one-account gateway.
TWO_ACCOUNTS = """
[accounts.default]
url = "{url}"
api_key_env = "TOLOKA_API_KEY"
[accounts.default.rate_limits]
limits = [{name = "bench_unlimited", kinds = ["*"], capacity = 100000000, period = "1s"}]
[accounts.second]
url = "{url}"
api_key_env = "TOLOKA_API_KEY"
[accounts.second.rate_limits]
limits = [{name = "bench_unlimited", kinds = ["*"], capacity = 100000000, period = "1s"}]
[auth.default]
accounts = ["default", "second"]
"""

ECHO_SERVER = """
import asyncio, sys, grpc
async def main(port):
    server = grpc.aio.server()
    async def echo(request, context):
        return request
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()
asyncio.run(main(int(sys.argv[1])))
"""


def _request() -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    task = req.tasks.add(pool_id="1", overlap=1)
    task.input_values.update({"image": "https://example.com/1.png"})
    return req


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(call: Any, make_request: Any, seconds: float, pids: dict[str, int]) -> dict[str, float]:
    """Calls/s, and each named process's CPU milliseconds per call, over one timed run."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    rate = await _drive(call, make_request, seconds)
    calls = rate * (time.perf_counter() - started)
    out = {"calls_per_s": rate}
    for name, pid in pids.items():
        out[f"{name}_cpu_ms_per_call"] = (cpu_seconds(pid) - before[name]) * 1000 / calls
    return out


async def _drive(call: Any, make_request: Any, seconds: float) -> float:
    done, took = await count_calls(lambda: call(make_request()), seconds, CONCURRENCY)
    return done / took


async def echo_rate(seconds: float) -> dict[str, float]:
    """Calls/s of a bare grpc.aio echo with a one-task CreateTasks payload."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        payload = _request().SerializeToString()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary(ECHO_METHOD)
            await _drive(echo, lambda: payload, 1.0)  # warm-up
            return await _measure(echo, lambda: payload, seconds, {"server": proc.pid, "client": os.getpid()})
    finally:
        proc.kill()
        proc.wait()


async def gateway_rate(seconds: float, *, accounts: int = 1) -> dict[str, float]:
    """CreateTasks calls/s through a gateway process in front of an emulator process; with two
    accounts, calls alternate between them (`x-toloka-account`)."""
    emu_port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "gateway", "emulator", "--listen", f"127.0.0.1:{emu_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workdir = Path(tempfile.mkdtemp(prefix="tgw-bench-"))
    config = workdir / "bench.toml"
    url = f"http://127.0.0.1:{emu_port}"
    config.write_text(UNLIMITED if accounts == 1 else TWO_ACCOUNTS.replace("{url}", url))
    gw = GatewayProcess(
        env={
            "TOLOKA_URL": url,
            "TOLOKA_API_KEY": "bench",
            "GATEWAY_CONFIG": str(config),
            "GATEWAY_LOG_LEVEL": "WARNING",
            "REDIS_URL": "",
        }
    ).start(workdir)
    try:
        await gw.wait_serving()
        async with grpc.aio.insecure_channel(gw.target) as channel:
            stub = channel.unary_unary(
                "/toloka.gateway.v1.TolokaGateway/CreateTasks",
                request_serializer=pb.CreateTasksRequest.SerializeToString,
                response_deserializer=pb.CreateTasksResponse.FromString,
            )
            names = itertools.cycle(["default", "second"][:accounts])

            def create(request: pb.CreateTasksRequest) -> Any:
                return stub(request, metadata=(("x-toloka-account", next(names)),))

            await _drive(create, _request, 1.0)
            assert gw.process is not None
            pids = {"gateway": gw.process.pid, "emulator": emulator.pid, "client": os.getpid()}
            return await _measure(create, _request, seconds, pids)
    finally:
        gw.stop()
        emulator.kill()
        emulator.wait()


def run(seconds: float = 5.0) -> dict[str, Any]:
    """Both rates, their ratio (target: gateway >= 50% of echo), and CPU per call of each process.

    Client, gateway and emulator share this machine's cores, so the CPU figures say where a
    call's cost goes: the gateway's own share is comparable with the echo server's.
    """
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    echo = event_loop.run(echo_rate(seconds))
    gateway = event_loop.run(gateway_rate(seconds))
    two = event_loop.run(gateway_rate(seconds, accounts=2))
    return {
        "echo_calls_per_s": round(echo["calls_per_s"]),
        "gateway_create_tasks_calls_per_s": round(gateway["calls_per_s"]),
        "gateway_to_echo_ratio": round(gateway["calls_per_s"] / echo["calls_per_s"], 3),
        "target_ratio": 0.5,
        "concurrency": CONCURRENCY,
        "cpu_ms_per_call": {
            "echo_server": round(echo["server_cpu_ms_per_call"], 3),
            "echo_client": round(echo["client_cpu_ms_per_call"], 3),
            "gateway": round(gateway["gateway_cpu_ms_per_call"], 3),
            "emulator": round(gateway["emulator_cpu_ms_per_call"], 3),
            "gateway_client": round(gateway["client_cpu_ms_per_call"], 3),
            "gateway_two_accounts": round(two["gateway_cpu_ms_per_call"], 3),
        },
        "two_accounts_calls_per_s": round(two["calls_per_s"]),
        # Calls alternating between two accounts against calls to one; about 1 means choosing the
        # account costs nothing measurable.
        "two_accounts_to_one_ratio": round(two["calls_per_s"] / gateway["calls_per_s"], 3),
        "two_accounts_cpu_per_call_ratio": round(
            two["gateway_cpu_ms_per_call"] / gateway["gateway_cpu_ms_per_call"], 3
        ),
        "cores": os.cpu_count(),
    }
