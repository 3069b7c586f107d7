"""Two Toloka accounts behind one gateway fleet: two emulators as the two accounts, a real Redis, two
replicas. Each call reaches only its account, with that account's key and act-under id; an operation
id and a limit belong to one account."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
import redis.asyncio as aioredis

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from gateway.emulator.state import EmulatorState
from tests.support.gateway_harness import InProcessGateway, rich_status, start_gateway, write_config

PROD_KEY, SANDBOX_KEY = "prod-account-key", "sandbox-account-key"
CONFIG = """
[accounts.production]
url = "{prod}"
api_key_env = "PROD_KEY"
act_under_account_id = "acting-prod"
[accounts.production.rate_limits]
limits = [{ name = "prod_creates", kinds = ["create_tasks"], capacity = 3, period = "1h" }]

[accounts.sandbox]
url = "{sandbox}"
api_key_file = "{key_file}"
[accounts.sandbox.rate_limits]
limits = [{ name = "sandbox_creates", kinds = ["create_tasks"], capacity = 2, period = "1h" }]

[rest]
listen = "127.0.0.1:0"
[auth.callers.analytics]
accounts = ["production"]
[auth.callers.labelling]
accounts = ["sandbox", "production"]
[auth.callers.labelling.per_account.production]   # in production: pool 1, and no pool writes
methods = ["CreateTasks", "GetOperation", "WaitOperation", "GetQuota"]
pools = ["1"]
rest = ["GET"]
"""


@dataclass
class Fleet:
    """Two replicas on one Redis, the two accounts' emulators, and the config they run."""

    replicas: list[InProcessGateway]
    prod: EmulatorServer
    sandbox: EmulatorServer
    config: str

    def posts(self, emulator: EmulatorServer) -> list[str | None]:
        """The operation ids of the task creations that reached `emulator`."""
        return [r.operation_id for r in emulator.state.requests if r.method == "POST"]


@pytest.fixture
async def fleet(redis_url: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with (
        EmulatorServer(EmulatorState(valid_api_keys={PROD_KEY})) as prod,
        EmulatorServer(EmulatorState(valid_api_keys={SANDBOX_KEY})) as sandbox,
    ):
        key_file = tmp_path / "sandbox.key"
        key_file.write_text(SANDBOX_KEY + "\n")
        text = CONFIG.replace("{prod}", str(prod.url)).replace("{sandbox}", str(sandbox.url))
        text = text.replace("{key_file}", str(key_file))
        config = write_config(tmp_path, text)
        env = {"PROD_KEY": PROD_KEY, "TOLOKA_API_KEY": "not-an-account-key"}
        replicas = [
            await start_gateway(toloka_url="", config_path=config, redis_url=redis_url, env=env)
            for _ in range(2)
        ]
        try:
            yield Fleet(replicas, prod, sandbox, config)
        finally:
            for replica in replicas:
                await replica.close()


def create(operation_id: str | None = None) -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=operation_id or str(uuid.uuid4()))
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
    return req


def metadata(caller: str, account: str | None = None) -> tuple[tuple[str, str], ...]:
    return (("x-caller-id", caller),) + ((("x-toloka-account", account),) if account else ())


async def test_each_call_reaches_only_its_account_with_its_key_and_act_under_id(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.calls")
    first, second = fleet.replicas
    a = await first.stub.CreateTasks(create(), metadata=metadata("analytics"), timeout=10)
    b = await second.stub.CreateTasks(create(), metadata=metadata("labelling"), timeout=10)
    c = await first.stub.CreateTasks(create(), metadata=metadata("labelling", "production"), timeout=10)
    # Each emulator accepts only its own account's key: a request sent with another key would be a 401.
    assert fleet.posts(fleet.prod) == [a.operation_id, c.operation_id]
    assert fleet.posts(fleet.sandbox) == [b.operation_id]  # labelling's first account
    logged = [(r.__dict__["caller"], r.__dict__.get("account")) for r in caplog.records if r.msg == "call"]
    assert logged == [("analytics", "production"), ("labelling", "sandbox"), ("labelling", "production")]
    assert {r.act_under for r in fleet.prod.state.requests} == {"acting-prod"}
    assert {r.act_under for r in fleet.sandbox.state.requests} == {None}  # never inherited
    # The REST front picks the account the same way.
    url = f"http://127.0.0.1:{second.gateway.rest_port}/api/v1/pools/1"
    async with aiohttp.ClientSession(headers={"X-Caller-Id": "labelling"}) as s:
        async with s.get(url) as r:
            assert r.status == 200, await r.text()
        async with s.get(url, headers={"X-Toloka-Account": "production"}) as r:
            assert r.status == 200, await r.text()
    assert [r.method for r in fleet.sandbox.state.requests][-1:] == ["GET"]
    assert [r.method for r in fleet.prod.state.requests][-1:] == ["GET"]
    # An operation is read back from its own account.
    waited = await first.stub.WaitOperation(
        pb.WaitOperationRequest(operation_id=b.operation_id), metadata=metadata("labelling"), timeout=10
    )
    assert waited.done and waited.operation.id == b.operation_id


async def test_same_operation_id_in_two_accounts_makes_two_operations_once_each(
    fleet: Fleet, redis_url: str
) -> None:
    first, second = fleet.replicas
    op_id = str(uuid.uuid4())
    calls = [
        first.stub.CreateTasks(create(op_id), metadata=metadata("labelling", account), timeout=10)
        for account in ("sandbox", "production")
    ] + [
        second.stub.CreateTasks(create(op_id), metadata=metadata("labelling", account), timeout=10)
        for account in ("sandbox", "production")
    ]
    replies = await asyncio.gather(*calls)
    assert {r.operation_id for r in replies} == {op_id}
    # One creation per account, however many replicas were asked: the dedupe key is the account's.
    assert fleet.posts(fleet.sandbox) == [op_id]
    assert fleet.posts(fleet.prod) == [op_id]
    client = aioredis.from_url(redis_url)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"*{op_id}*")]
    finally:
        await client.aclose()
    assert any(":acct:sandbox:" in k for k in keys) and any(":acct:production:" in k for k in keys), keys


async def test_each_account_spends_only_its_own_limits_across_replicas(fleet: Fleet) -> None:
    first, second = fleet.replicas
    for i in range(3):  # production's 3 creates an hour, spread over both replicas
        await fleet.replicas[i % 2].stub.CreateTasks(create(), metadata=metadata("analytics"), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await second.stub.CreateTasks(create(), metadata=metadata("analytics"), timeout=10)
    details = rich_status(refused.value)
    assert details["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert [v.subject for v in details["QuotaFailure"].violations] == ["prod_creates"]
    assert details["ErrorInfo"].metadata["account"] == "production"  # whose budget refused it
    url = (
        f"http://127.0.0.1:{first.gateway.rest_port}/api/v1/tasks?operation_id={uuid.uuid4()}&async_mode=true"
    )
    task = {"pool_id": "1", "overlap": 1, "input_values": {"image": "a"}}
    async with (
        aiohttp.ClientSession(headers={"X-Caller-Id": "analytics"}) as s,
        s.post(url, json=[task]) as r,
    ):
        assert r.status == 429, await r.text()
        assert (await r.json())["payload"]["account"] == "production"
    # The sandbox's budget is untouched by production's flood.
    for replica in (first, second):
        await replica.stub.CreateTasks(create(), metadata=metadata("labelling"), timeout=10)
    assert len(fleet.posts(fleet.prod)) == 3 and len(fleet.posts(fleet.sandbox)) == 2


async def test_get_quota_answers_for_the_account_the_call_names(fleet: Fleet) -> None:
    first, second = fleet.replicas
    await first.stub.CreateTasks(create(), metadata=metadata("labelling", "production"), timeout=10)

    async def quota(account: str) -> dict[str, int]:
        reply = await second.stub.GetQuota(
            pb.GetQuotaRequest(), metadata=metadata("labelling", account), timeout=10
        )
        assert reply.account == account
        return {limit.name: limit.remaining for limit in reply.limits}

    assert await quota("production") == {"prod_creates": 2}
    assert await quota("sandbox") == {"sandbox_creates": 2}
    url = f"http://127.0.0.1:{first.gateway.rest_port}/gateway/v1/quota"
    async with aiohttp.ClientSession(headers={"X-Caller-Id": "analytics"}) as s, s.get(url) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert [(x["name"], x["remaining"]) for x in body["limits"]] == [("prod_creates", 2)]
    assert body["account"] == "production"  # analytics' one account


async def test_an_account_the_caller_may_not_use_is_refused_before_anything_is_spent(fleet: Fleet) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await fleet.replicas[0].stub.CreateTasks(
            create(), metadata=metadata("analytics", "sandbox"), timeout=10
        )
    details = rich_status(refused.value)
    assert details["code"] == grpc.StatusCode.PERMISSION_DENIED
    assert details["ErrorInfo"].metadata["account"] == "sandbox"
    assert not fleet.sandbox.state.requests and not fleet.prod.state.requests


async def test_start_up_names_each_account_and_where_it_goes(
    fleet: Fleet, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    env = {"PROD_KEY": PROD_KEY}
    third = await start_gateway(toloka_url="", config_path=fleet.config, redis_url=redis_url, env=env)
    await third.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway"]
    assert (
        f"Toloka: account production (the default): {fleet.prod.url} (its key from [accounts.production])"
        in lines
    )
    [named] = [line for line in lines if line.startswith("Toloka accounts:")]
    assert f"production (default) at {fleet.prod.url}; sandbox at {fleet.sandbox.url}" in named
    assert PROD_KEY not in "\n".join(lines) and SANDBOX_KEY not in "\n".join(lines)


async def test_a_callers_rights_in_one_account_are_its_per_account_ones_there(fleet: Fleet) -> None:
    first, second = fleet.replicas
    other_pool = create()
    other_pool.tasks[0].pool_id = "2"
    await first.stub.CreateTasks(other_pool, metadata=metadata("labelling"), timeout=10)  # sandbox: any pool
    with pytest.raises(grpc.aio.AioRpcError) as pool_refused:
        await second.stub.CreateTasks(other_pool, metadata=metadata("labelling", "production"), timeout=10)
    assert rich_status(pool_refused.value)["ErrorInfo"].reason == "POOL_NOT_ALLOWED"
    rules = pb.SetReworkRulesRequest(pool_id="1")
    with pytest.raises(grpc.aio.AioRpcError) as method_refused:
        await second.stub.SetReworkRules(rules, metadata=metadata("labelling", "production"), timeout=10)
    assert rich_status(method_refused.value)["ErrorInfo"].reason == "METHOD_NOT_ALLOWED"
    url = f"http://127.0.0.1:{first.gateway.rest_port}/api/v1/pools/1/close"
    async with aiohttp.ClientSession(headers={"X-Caller-Id": "labelling"}) as s:
        async with s.post(url, headers={"X-Toloka-Account": "production"}) as r:
            assert r.status == 403, await r.text()
        async with s.get(f"http://127.0.0.1:{first.gateway.rest_port}/api/v1/pools/2") as r:
            assert r.status == 200, await r.text()  # sandbox, any pool
    assert fleet.posts(fleet.prod) == []  # nothing refused reached production
    assert fleet.posts(fleet.sandbox) == [other_pool.operation_id]


async def test_an_operation_is_read_only_through_the_account_that_made_it(fleet: Fleet) -> None:
    first, second = fleet.replicas
    made = await first.stub.CreateTasks(create(), metadata=metadata("labelling"), timeout=10)  # sandbox
    read = pb.GetOperationRequest(operation_id=made.operation_id)
    assert (await second.stub.GetOperation(read, metadata=metadata("labelling"), timeout=10)).operation.id
    # Production's poller has no record of it: a caller limited to pools there is refused before any
    # read; one that may read every pool asks production's Toloka, which never heard of it.
    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await second.stub.GetOperation(read, metadata=metadata("labelling", "production"), timeout=10)
    assert rich_status(limited.value)["ErrorInfo"].reason == "OPERATION_NOT_ALLOWED"
    with pytest.raises(grpc.aio.AioRpcError) as unlimited:
        await second.stub.GetOperation(read, metadata=metadata("analytics"), timeout=10)
    assert unlimited.value.code() == grpc.StatusCode.NOT_FOUND
    url = f"http://127.0.0.1:{first.gateway.rest_port}/api/v1/operations/{made.operation_id}"
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers={"X-Caller-Id": "analytics"}) as r:
            assert r.status == 404, await r.text()
        async with s.get(url, headers={"X-Caller-Id": "labelling"}) as r:
            assert r.status == 200 and (await r.json())["id"] == made.operation_id
    asked = [r.path for r in fleet.prod.state.requests if r.method == "GET"]
    assert asked == [f"/api/v1/operations/{made.operation_id}"] * 2  # analytics' two reads, nothing else


async def test_start_up_warns_when_a_one_account_gateway_still_spends_limits_no_account_counts(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limits = '[rate_limits]\nlimits = [{ name = "creates", kinds = ["create_tasks"], capacity = 9, period = "1h" }]\n'
    caplog.set_level(logging.WARNING, logger="gateway")
    async with EmulatorServer() as emulator:

        async def warnings_of(config_text: str, env: dict[str, str] | None = None) -> list[str]:
            caplog.clear()
            config = write_config(tmp_path, config_text)
            replica = await start_gateway(
                toloka_url=str(emulator.url), config_path=config, redis_url=redis_url, env=env
            )
            await replica.stub.CreateTasks(create(), metadata=metadata("analytics"), timeout=10)
            await replica.close()
            return [r.getMessage() for r in caplog.records if "one-account gateway" in r.getMessage()]

        accounts = f'[accounts.{{}}]\nurl = "{emulator.url}"\napi_key_env = "PROD_KEY"\n'
        env = {"PROD_KEY": PROD_KEY}
        assert await warnings_of(accounts.format("production"), env) == []  # nothing spent the old keys yet
        assert await warnings_of(limits) == []  # a replica from before [accounts], still serving
        [warned] = await warnings_of(limits + accounts.format("production"), env)
        assert "limits creates" in warned and "`default`" in warned
        # Named `default`, the account shares those keys: nothing is left uncounted.
        assert await warnings_of(limits + accounts.format("default"), env) == []
