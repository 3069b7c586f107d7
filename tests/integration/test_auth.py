"""Caller identity and permissions in each mode: metadata, bearer tokens, mutual TLS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.emulator.server import EmulatorServer
from tests.support.certs import make_certs
from tests.support.gateway_harness import InProcessGateway, rich_status, start_gateway, write_config

PERMISSIONS = """
[auth.callers.writer]
methods = ["CreateTasks", "WaitOperation", "GetOperation"]
pools = ["1"]
[auth.callers.admin]
methods = ["*"]
"""

Start = Callable[[str], Awaitable[InProcessGateway]]


@pytest.fixture
async def start(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[Start]:
    started: list[InProcessGateway] = []

    async def go(auth_toml: str) -> InProcessGateway:
        handle = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, auth_toml))
        started.append(handle)
        return handle

    yield go
    for handle in started:
        await handle.close()


def create(pool_id: str = "1") -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    req.tasks.add(pool_id=pool_id, overlap=1).input_values.update({"image": "a"})
    return req


async def refused(call: Awaitable[object]) -> dict[str, object]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return rich_status(info.value)


def toloka_calls(emulator: EmulatorServer) -> int:
    return len(emulator.state.requests)


async def test_unknown_caller_is_unauthenticated_and_spends_nothing_when_only_known_callers(
    start: Start, emulator: EmulatorServer
) -> None:
    gw = await start("[auth]\nrequire_known_callers = true\n" + PERMISSIONS)
    for md in (gw.md("stranger"), ()):
        details = await refused(gw.stub.CreateTasks(create(), metadata=md))
        assert details["code"] == grpc.StatusCode.UNAUTHENTICATED
    assert toloka_calls(emulator) == 0
    assert sum(gw.gateway.limiter.stats.admitted.values()) == 0  # type: ignore[union-attr]


async def test_caller_without_permission_is_denied_when_calling_set_rework_rules(
    start: Start, emulator: EmulatorServer
) -> None:
    gw = await start("[auth]\nrequire_known_callers = true\n" + PERMISSIONS)
    rule = pb.ReworkRule(restriction=pb.RestrictionTrigger(), delta=1, open_pool=True)
    details = await refused(
        gw.stub.SetReworkRules(pb.SetReworkRulesRequest(pool_id="1", rules=[rule]), metadata=gw.md("writer"))
    )
    assert details["code"] == grpc.StatusCode.PERMISSION_DENIED
    assert details["ErrorInfo"].reason == "METHOD_NOT_ALLOWED"  # type: ignore[attr-defined]
    assert toloka_calls(emulator) == 0
    reply = await gw.stub.SetReworkRules(
        pb.SetReworkRulesRequest(pool_id="1", rules=[rule]), metadata=gw.md("admin")
    )
    assert reply.changed


async def test_pool_outside_the_callers_list_is_denied_when_creating_tasks(
    start: Start, emulator: EmulatorServer
) -> None:
    gw = await start("[auth]\nrequire_known_callers = true\n" + PERMISSIONS)
    details = await refused(gw.stub.CreateTasks(create(pool_id="4"), metadata=gw.md("writer")))
    assert details["code"] == grpc.StatusCode.PERMISSION_DENIED
    assert details["ErrorInfo"].reason == "POOL_NOT_ALLOWED"  # type: ignore[attr-defined]
    assert toloka_calls(emulator) == 0
    assert (await gw.stub.CreateTasks(create(pool_id="1"), metadata=gw.md("writer"))).operation.id


async def test_operations_are_readable_only_in_the_callers_pools_when_it_is_limited_to_some(
    start: Start, emulator: EmulatorServer
) -> None:
    gw = await start(
        "[auth]\nrequire_known_callers = true\n"
        + PERMISSIONS
        + '[auth.callers.other]\nmethods = ["*"]\npools = ["2"]\n'
    )
    mine = (await gw.stub.CreateTasks(create(pool_id="1"), metadata=gw.md("writer"))).operation.id
    theirs = (await gw.stub.CreateTasks(create(pool_id="2"), metadata=gw.md("admin"))).operation.id
    unknown = str(uuid.uuid4())  # not created through the gateway: no pool to attribute it to
    read = pb.GetOperationRequest
    assert (
        await gw.stub.GetOperation(read(operation_id=mine), metadata=gw.md("writer"))
    ).operation.id == mine
    before = toloka_calls(emulator)
    for caller, op_id in (("writer", theirs), ("other", mine), ("writer", unknown)):
        for call in (
            gw.stub.GetOperation(read(operation_id=op_id), metadata=gw.md(caller)),
            gw.stub.WaitOperation(pb.WaitOperationRequest(operation_id=op_id), metadata=gw.md(caller)),
        ):
            details = await refused(call)
            assert details["code"] == grpc.StatusCode.PERMISSION_DENIED, (caller, op_id)
            assert details["ErrorInfo"].reason == "OPERATION_NOT_ALLOWED"  # type: ignore[attr-defined]
    assert toloka_calls(emulator) == before  # refused before any Toloka read
    for op_id in (mine, theirs):  # a caller allowed every pool reads any operation
        assert (await gw.stub.GetOperation(read(operation_id=op_id), metadata=gw.md("admin"))).operation.id
    details = await refused(gw.stub.GetOperation(read(operation_id=unknown), metadata=gw.md("admin")))
    assert details["code"] == grpc.StatusCode.NOT_FOUND


async def test_bearer_tokens_identify_callers_when_token_mode(
    start: Start, emulator: EmulatorServer, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('writer = "tok-writer-5f2a"\nadmin = "tok-admin-9c1b"\n')
    gw = await start(
        f'[auth]\nmode = "token"\ntokens_file = "{tokens}"\nrequire_known_callers = true\n' + PERMISSIONS
    )
    for md in ((), (("authorization", "Bearer wrong"),), (("authorization", "tok-writer-5f2a"),)):
        details = await refused(gw.stub.CreateTasks(create(), metadata=md))
        assert details["code"] == grpc.StatusCode.UNAUTHENTICATED
    # The metadata identity is ignored in token mode: a token names the caller.
    denied = await refused(
        gw.stub.GetReworkRules(
            pb.GetReworkRulesRequest(pool_id="1"),
            metadata=(("authorization", "Bearer tok-writer-5f2a"), ("x-caller-id", "admin")),
        )
    )
    assert denied["code"] == grpc.StatusCode.PERMISSION_DENIED
    assert toloka_calls(emulator) == 0
    ok = await gw.stub.CreateTasks(create(), metadata=(("authorization", "Bearer tok-writer-5f2a"),))
    assert ok.operation.id


async def test_client_certificate_names_the_caller_when_mtls(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    certs = make_certs(tmp_path / "pki", ("writer", "stranger"))
    auth = (
        f'[auth]\nmode = "mtls"\nrequire_known_callers = true\ntls_cert_file = "{certs.server_cert}"\n'
        f'tls_key_file = "{certs.server_key}"\ntls_client_ca_file = "{certs.ca}"\n' + PERMISSIONS
    )
    handle = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, auth))
    target = f"127.0.0.1:{handle.gateway.port}"
    try:

        def channel(cn: str | None) -> grpc.aio.Channel:
            key_pair = certs.clients[cn] if cn else None
            creds = grpc.ssl_channel_credentials(
                root_certificates=certs.ca.read_bytes(),
                private_key=key_pair[1].read_bytes() if key_pair else None,
                certificate_chain=key_pair[0].read_bytes() if key_pair else None,
            )
            return grpc.aio.secure_channel(target, creds)

        async with channel("writer") as ch:
            assert (await pb_grpc.TolokaGatewayStub(ch).CreateTasks(create(), timeout=10)).operation.id
        async with channel("stranger") as ch:
            details = await refused(pb_grpc.TolokaGatewayStub(ch).CreateTasks(create(), timeout=10))
            assert details["code"] == grpc.StatusCode.UNAUTHENTICATED
        async with channel(None) as ch:  # no client certificate: the TLS handshake is refused
            details = await refused(pb_grpc.TolokaGatewayStub(ch).CreateTasks(create(), timeout=5))
            assert details["code"] == grpc.StatusCode.UNAVAILABLE
        assert len([r for r in emulator.state.requests if r.path == "/api/v1/tasks"]) == 1
    finally:
        await handle.close()
