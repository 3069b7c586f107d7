"""Requests that cannot be decoded get INVALID_ARGUMENT after authentication, counted and quietly logged.

Decoding used to raise inside gRPC: the caller got UNKNOWN with a parser class name, the call was not
counted, and a stack trace was logged at error level before any authentication.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from tests.rpc.conftest import Start, calls_counted, create_request, raw_method
from tests.support.gateway_harness import rich_status


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            low, n = n & 0x7F, n >> 7
            out.append(low | (0x80 if n else 0))
            if not n:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def deeply_nested_create_tasks(depth: int) -> bytes:
    """A CreateTasksRequest whose one task's input_values nests Structs `depth` levels deep."""
    value = b""
    for _ in range(depth):
        entry = _field(1, b"a") + _field(2, value)  # Struct.fields map entry: key, Value
        value = _field(5, _field(1, entry))  # Value.struct_value = Struct{fields: [entry]}
    task = _field(1, b"1") + _field(2, _field(1, _field(1, b"a") + _field(2, value)))
    return _field(1, task)


GARBAGE = b"\xff\xff\xff\xff\x0f"
# Cut inside the operation_id string: its length prefix promises more bytes than there are.
TRUNCATED = pb.CreateTasksRequest(
    tasks=[pb.Task(pool_id="1", overlap=1)], operation_id="5c7b6a63-0e0f-4a8b-9a53-3c5d0c9c7f15"
).SerializeToString()[:-5]
DEEP = deeply_nested_create_tasks(200)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(GARBAGE, id="garbage"),
        pytest.param(TRUNCATED, id="truncated"),
        pytest.param(DEEP, id="nested-too-deep"),
    ],
)
async def test_undecodable_create_tasks_is_invalid_argument_when_sent_as_raw_bytes(
    start: Start, caplog: pytest.LogCaptureFixture, payload: bytes
) -> None:
    with pytest.raises(DecodeError):  # the payload really is undecodable
        pb.CreateTasksRequest.FromString(payload)
    gw = await start()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await raw_method(gw.channel, "CreateTasks")(payload, metadata=gw.md(), timeout=10)
    details = rich_status(info.value)
    assert details["code"] == grpc.StatusCode.INVALID_ARGUMENT, details["message"]
    assert details["ErrorInfo"].reason == "UNDECODABLE_REQUEST"
    for leak in ("DecodeError", "class", "Traceback", "google.protobuf", "Error parsing"):
        assert leak not in str(details["message"])
    assert calls_counted(gw, "CreateTasks", "INVALID_ARGUMENT") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The gateway still serves the same connection.
    assert (await gw.stub.CreateTasks(create_request(), metadata=gw.md(), timeout=10)).operation_id


@pytest.mark.parametrize(
    "method", ["GetOperation", "WaitOperation", "SetReworkRules", "GetReworkRules", "GetQuota"]
)
async def test_undecodable_request_is_invalid_argument_when_sent_to_any_unary_method(
    start: Start, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    gw = await start()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await raw_method(gw.channel, method)(GARBAGE, metadata=gw.md(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert calls_counted(gw, method, "INVALID_ARGUMENT") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_undecodable_watch_is_invalid_argument_when_sent_as_raw_bytes(start: Start) -> None:
    gw = await start()
    watch = gw.channel.unary_stream(
        "/toloka.gateway.v1.TolokaGateway/WatchOperation", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in watch(GARBAGE, metadata=gw.md(), timeout=10):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert calls_counted(gw, "WatchOperation", "INVALID_ARGUMENT") == 1


async def test_undecodable_request_is_unauthenticated_when_token_auth_is_on_and_no_token_is_sent(
    start: Start, emulator: EmulatorServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('writer = "tok-writer-5f2a"\n')
    gw = await start(f'[auth]\nmode = "token"\ntokens_file = "{tokens}"\n')
    for payload in (GARBAGE, TRUNCATED, DEEP):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await raw_method(gw.channel, "CreateTasks")(payload, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
    assert calls_counted(gw, "CreateTasks", "UNAUTHENTICATED") == 3
    with pytest.raises(grpc.aio.AioRpcError) as info:
        token = (("authorization", "Bearer tok-writer-5f2a"),)
        await raw_method(gw.channel, "CreateTasks")(GARBAGE, metadata=token, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert emulator.state.requests == []


async def test_health_and_reflection_still_answer_when_the_gateway_registers_its_own_handlers(
    start: Start,
) -> None:
    gw = await start()
    health = await health_pb2_grpc.HealthStub(gw.channel).Check(
        health_pb2.HealthCheckRequest(service="toloka.gateway.v1.TolokaGateway"), timeout=5
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(gw.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for reply in reflection.ServerReflectionInfo(iter([request]), timeout=5):
        names = {s.name for s in reply.list_services_response.service}
        assert "toloka.gateway.v1.TolokaGateway" in names
        break
    else:
        raise AssertionError("no reflection reply")
