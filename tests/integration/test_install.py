"""The image's install target, run for real into fresh virtualenvs, yields a gateway that serves calls.

No container engine runs here, so this exercises exactly what the Dockerfile's build stage runs
(`make install-runtime`) and then starts the installed console script.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.emulator.server import EmulatorServer
from tests.support.gateway_harness import GatewayProcess

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
async def test_gateway_from_the_image_install_target_serves_calls_when_installed_fresh(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    build, runtime = tmp_path / "build-venv", tmp_path / "runtime-venv"
    result = await asyncio.to_thread(
        subprocess.run,
        ["make", "install-runtime", f"PYTHON={sys.executable}", f"VENV={build}", f"RUNTIME_VENV={runtime}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    script = runtime / "bin" / "toloka-gateway"
    assert script.exists()
    no_tools = subprocess.run(
        [str(runtime / "bin" / "python"), "-c", "import grpc_tools"], check=False, capture_output=True
    )
    assert no_tools.returncode != 0, "build tools must not reach the runtime virtualenv"

    proc = GatewayProcess(env={"TOLOKA_URL": emulator.url, "TOLOKA_API_KEY": "install-test", "REDIS_URL": ""})
    proc.command = [str(script), "serve"]
    proc.start(tmp_path)
    try:
        await proc.wait_serving(60)
        req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
        req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
        async with grpc.aio.insecure_channel(proc.target) as channel:
            reply = await pb_grpc.TolokaGatewayStub(channel).CreateTasks(req, timeout=10)
        assert reply.operation.id == req.operation_id
    finally:
        proc.stop()
