"""The Toloka API key never appears in a reply or a log line, even when Toloka rejects it."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from gateway.observability.call_log import JsonFormatter
from tests.support.gateway_harness import rich_status, start_gateway, write_config

SECRET = "abcdefghijklmnopqrstuv.SECRETPART.zz9"  # API-key shaped, so it is sent as `ApiKey ...`


async def test_rejected_key_appears_in_no_reply_or_log_when_toloka_refuses_it(
    emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.state.valid_api_keys = {"the-right-key"}
    caplog.set_level(logging.DEBUG)
    gw = await start_gateway(
        toloka_url=emulator.url, config_path=write_config(tmp_path), env={"TOLOKA_API_KEY": SECRET}
    )
    try:
        req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
        req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.CreateTasks(req, metadata=gw.md())
        details = rich_status(info.value)
        assert details["code"] == grpc.StatusCode.INTERNAL
        assert details["ErrorInfo"].reason == "TOLOKA_CREDENTIALS_REJECTED"
        reply_text = " ".join(
            [
                str(info.value.details()),
                str(info.value.debug_error_string()),
                str(info.value.trailing_metadata()),
            ]
            + [str(v) for v in details.values()]
        )
        assert "SECRETPART" not in reply_text
        assert repr(gw.gateway.toloka).find("SECRETPART") == -1
        assert [r for r in emulator.state.requests if r.auth_scheme == "ApiKey"]  # it really was sent
    finally:
        await gw.close()
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    assert "call" in logged and "SECRETPART" not in logged
