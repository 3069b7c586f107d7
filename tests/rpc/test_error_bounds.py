"""Every status the gateway sends is bounded, whatever the error quotes from the request.

A client refuses a response whose metadata exceeds its limit (8 KiB soft, 16 KiB hard, over the whole
trailer block) and reports RESOURCE_EXHAUSTED "received metadata size exceeds ...", which reads as a
quota refusal: so grpc-message stays near 1 KiB as sent and the google.rpc.Status under 8 KiB.
"""

from __future__ import annotations

import math
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.rpc.status import ELLIPSIS, MAX_DETAILS_BYTES, MAX_MESSAGE_BYTES, to_status, to_trailers
from tests.rpc.conftest import Start
from tests.support.gateway_harness import rich_status

KIB = 1024


def sent_size(message: str) -> int:
    """Bytes of grpc-message on the wire: all but printable ASCII (and '%') is percent-encoded."""
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message.encode("utf-8"))


def unpack(status: status_pb2.Status) -> dict[str, object]:
    out: dict[str, object] = {}
    for detail in status.details:
        for cls in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
            error_details_pb2.QuotaFailure,
        ):
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                out[cls.DESCRIPTOR.name] = msg
    return out


def details_bytes(error: grpc.aio.AioRpcError) -> bytes:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            return value
    raise AssertionError("no grpc-status-details-bin in the trailer")


def huge_violations(n: int, chars: int, text: str = "k") -> list[errors.FieldViolation]:
    return [
        errors.FieldViolation(f"tasks[{i}]." + text * chars, text * chars, text * chars) for i in range(n)
    ]


def test_message_is_cut_to_a_kib_as_sent_when_it_quotes_a_huge_value() -> None:
    for text in ("x" * 1_000_000, "я" * 100_000, "%" * 5000, "\n" * 5000):
        status = to_status(errors.InvalidArgument(text))
        assert sent_size(status.message) <= MAX_MESSAGE_BYTES
        assert status.message.endswith(ELLIPSIS)
        assert status.message[:-1] == text[: len(status.message) - 1]


def test_short_message_is_kept_whole_when_it_fits() -> None:
    assert to_status(errors.InvalidArgument("pool_id: is required")).message == "pool_id: is required"


def test_violations_are_cut_and_counted_when_thousands_quote_huge_paths() -> None:
    error = errors.InvalidArgument("invalid", violations=huge_violations(10_000, 8192))
    status = to_status(error, request_id="r1")
    assert status.ByteSize() < MAX_DETAILS_BYTES
    parts = unpack(status)
    bad, info = parts["BadRequest"], parts["ErrorInfo"]
    assert isinstance(bad, error_details_pb2.BadRequest) and isinstance(info, error_details_pb2.ErrorInfo)
    kept = len(bad.field_violations)
    assert 1 <= kept < 10_000
    assert int(info.metadata["omitted_violations"]) == 10_000 - kept
    assert info.metadata["request_id"] == "r1"
    first = bad.field_violations[0]
    assert first.field.startswith("tasks[0].kkk") and first.field.endswith(ELLIPSIS)
    assert len(first.field) <= 256 and len(first.description) <= 256 and first.description.endswith(ELLIPSIS)


def test_status_stays_bounded_when_every_part_of_the_error_is_huge() -> None:
    error = errors.RateLimited(
        "ж" * 100_000,
        reason="R" * 10_000,
        toloka_code="C" * 10_000,
        toloka_request_id="I" * 10_000,
        metadata={f"key{i}" + "k" * 1000: "😀" * 10_000 for i in range(200)},
        violations=huge_violations(5000, 2000, "😀"),
        quota=[errors.QuotaViolation("s" * 5000, "d" * 5000) for _ in range(500)],
        retry_after=math.inf,
    )
    trailers = to_trailers(error, request_id="r" * 10_000)
    status = status_pb2.Status.FromString(dict(trailers.metadata)["grpc-status-details-bin"])  # type: ignore[arg-type]
    assert status.ByteSize() < MAX_DETAILS_BYTES
    assert sent_size(trailers.message) <= MAX_MESSAGE_BYTES
    parts = unpack(status)
    assert {"ErrorInfo", "BadRequest", "RetryInfo", "QuotaFailure"} <= parts.keys()  # none had to be dropped
    info = parts["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert len(info.reason) <= 64 and all(len(v) <= 256 for v in info.metadata.values())
    assert int(info.metadata["omitted_quota_violations"]) > 0


def test_status_is_encodable_when_the_message_holds_a_lone_surrogate() -> None:
    trailers = to_trailers(
        errors.InvalidArgument("bad \ud800 key", violations=[errors.FieldViolation("\udfff", "x")])
    )
    trailers.message.encode("utf-8")
    status = status_pb2.Status.FromString(dict(trailers.metadata)["grpc-status-details-bin"])  # type: ignore[arg-type]
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_nan_under_a_huge_key_is_invalid_argument_when_sent_over_grpc(start: Start) -> None:
    gw = await start()
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"k" * 8192: math.nan, "image": "a"})
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(req, metadata=gw.md(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert len(details_bytes(info.value)) < 8 * KIB
    assert sent_size(info.value.details() or "") <= MAX_MESSAGE_BYTES
    [violation] = rich_status(info.value)["BadRequest"].field_violations
    assert violation.field.startswith("tasks[0].input_values.kkk") and len(violation.field) <= 256


async def test_thousands_of_invalid_tasks_are_invalid_argument_when_sent_over_grpc(start: Start) -> None:
    gw = await start()
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    for i in range(5000):
        task = req.tasks.add(pool_id="p" * 2000, overlap=-1)
        task.input_values.update({f"{i}" + "k" * 8192: math.nan})
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.CreateTasks(req, metadata=gw.md(), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    details = details_bytes(info.value)
    assert len(details) < 8 * KIB
    parts = unpack(status_pb2.Status.FromString(details))
    bad, error_info = parts["BadRequest"], parts["ErrorInfo"]
    assert isinstance(bad, error_details_pb2.BadRequest) and isinstance(
        error_info, error_details_pb2.ErrorInfo
    )
    assert len(bad.field_violations) >= 1
    assert int(error_info.metadata["omitted_violations"]) >= 1
