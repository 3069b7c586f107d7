"""The Toloka account of a call: the caller's default, or the one it names (x-toloka-account metadata,
X-Toloka-Account header), checked against the accounts the caller may use and the one the gateway serves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from tests.support.gateway_harness import InProcessGateway, rich_status, start_gateway, write_config

PROD_KEY = "prod-account-key"
CONFIG = """
[accounts.production]
url = "{url}"
api_key_env = "PROD_KEY"
[rest]
listen = "127.0.0.1:0"
[auth.callers.analytics]
accounts = ["production"]
"""


@pytest.fixture
async def gw(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    emulator.state.valid_api_keys = {PROD_KEY}  # any other key is refused: the account's own key is used
    config = write_config(tmp_path, CONFIG.replace("{url}", str(emulator.url)))
    handle = await start_gateway(toloka_url=str(emulator.url), config_path=config, env={"PROD_KEY": PROD_KEY})
    yield handle
    await handle.close()


def create() -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
    return req


def metadata(caller: str, account: str | None) -> tuple[tuple[str, str], ...]:
    return (("x-caller-id", caller),) + ((("x-toloka-account", account),) if account is not None else ())


@pytest.mark.parametrize(
    ("caller", "account"), [("analytics", None), ("analytics", "production"), ("other", None)]
)
async def test_call_goes_to_the_account_with_its_key_when_the_caller_may_use_it(
    gw: InProcessGateway, emulator: EmulatorServer, caller: str, account: str | None
) -> None:
    reply = await gw.stub.CreateTasks(create(), metadata=metadata(caller, account), timeout=10)
    assert reply.operation_id
    assert [r.method for r in emulator.state.requests] == ["POST"]


@pytest.mark.parametrize(
    ("caller", "account"), [("analytics", "sandbox"), ("other", "sandbox"), ("other", "x" * 500)]
)
async def test_account_is_permission_denied_naming_it_when_the_caller_may_not_use_it(
    gw: InProcessGateway, emulator: EmulatorServer, caller: str, account: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(create(), metadata=metadata(caller, account), timeout=10)
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.PERMISSION_DENIED
    assert details["ErrorInfo"].reason == "ACCOUNT_NOT_ALLOWED"
    assert details["ErrorInfo"].metadata["account"] == account[:64]  # bounded
    assert "production" in str(details["message"])  # the accounts it may use
    assert not emulator.state.requests  # nothing reached Toloka, nothing was spent


async def test_rest_request_is_403_in_toloka_shape_when_it_names_an_account_the_caller_may_not_use(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    url = f"http://127.0.0.1:{gw.gateway.rest_port}/api/v1/pools/1"
    async with aiohttp.ClientSession(headers={"X-Caller-Id": "analytics"}) as s:
        async with s.get(url, headers={"X-Toloka-Account": "sandbox"}) as r:
            assert r.status == 403
            body = await r.json()
        assert (body["code"], body["payload"]["reason"]) == ("ACCESS_DENIED", "ACCOUNT_NOT_ALLOWED"), body
        assert "sandbox" in body["message"]
        assert not emulator.state.requests
        async with s.get(url, headers={"X-Toloka-Account": "production"}) as r:
            assert r.status == 200, await r.text()
