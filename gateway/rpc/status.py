"""The ONLY map from domain errors to gRPC statuses with google.rpc details.

Every error carries ErrorInfo (domain "toloka-gateway", reason, and in metadata Toloka's code
and request id when Toloka said something). Validation errors add BadRequest field
violations; quota refusals add QuotaFailure, and RetryInfo when waiting can help (a request that can
never fit its quota gets none, so clients that honour RetryInfo do not retry it forever); transient
failures add RetryInfo.

Everything sent is bounded, whatever the error holds (field paths and messages can quote the request:
a Struct key of megabytes, thousands of invalid tasks). A client refuses a response whose metadata
exceeds its limit (8 KiB soft, 16 KiB hard, counted over the whole trailer block with binary values
decoded) and reports RESOURCE_EXHAUSTED "received metadata size exceeds ...", which reads as a quota
refusal. So grpc-message stays within MAX_MESSAGE_BYTES as sent (percent-encoded), the serialized
google.rpc.Status within MAX_DETAILS_BYTES, and the two together with the fixed headers under 8 KiB.
Long texts are cut and end in an ellipsis; left-out violations are counted in ErrorInfo metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from gateway import errors

T = TypeVar("T")
DOMAIN = "toloka-gateway"
DEFAULT_RETRY_S = 1.0  # RetryInfo for a transient failure that named no delay
DETAILS_KEY = "grpc-status-details-bin"
# Envoy never retries a response carrying this header (its value is not looked at): a refusal by a
# quota would only be multiplied by mesh retries. Clients still see RetryInfo.
ENVOY_RATELIMITED = ("x-envoy-ratelimited", "true")

MAX_MESSAGE_BYTES = 1024  # grpc-message as sent, percent-encoded
MAX_DETAILS_BYTES = 6 * 1024  # the serialized google.rpc.Status
ELLIPSIS = "…"
_ERROR_INFO_BYTES = 1536
_QUOTA_FAILURE_BYTES = 1024
_REASON_CHARS = 64
_KEY_CHARS = 64
_VALUE_CHARS = 256
_FIELD_CHARS = 256
_DESCRIPTION_CHARS = 256
_MAX_VIOLATIONS = 100
_ENTRY_OVERHEAD = 8  # tag and length prefixes of one repeated or map entry, rounded up
_ANY_OVERHEAD = 64  # an Any's type URL, tags and lengths
_SLACK = 256  # ErrorInfo's domain and whatever the estimates above miss
_MAX_RETRY_S = 86400.0
OMITTED_VIOLATIONS = "omitted_violations"
OMITTED_QUOTA_VIOLATIONS = "omitted_quota_violations"

_CODES: dict[type[errors.GatewayError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Internal: grpc.StatusCode.INTERNAL,
}


def grpc_code(error: errors.GatewayError) -> grpc.StatusCode:
    """The gRPC code for a domain error."""
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def _clean(text: str) -> str:
    # A lone surrogate cannot be encoded as UTF-8, and gRPC and protobuf would both fail on it.
    return text.encode("utf-8", "replace").decode("utf-8")


def cut(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its first ones ending in an ellipsis."""
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + ELLIPSIS
    return _clean(text)


def _sent_size(char: str) -> int:
    """Bytes a character takes in grpc-message, which percent-encodes all but printable ASCII."""
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in char.encode("utf-8", "replace"))


def cut_message(text: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """`text` cut so that it takes at most `limit` bytes as grpc-message."""
    text = _clean(text[: limit + 1])  # every character takes at least one byte
    sizes = [_sent_size(char) for char in text]
    if sum(sizes) <= limit:
        return text
    room, used = limit - _sent_size(ELLIPSIS), 0
    for i, size in enumerate(sizes):
        if used + size > room:
            return text[:i] + ELLIPSIS
        used += size
    return text


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def _metadata_entries(error: errors.GatewayError, request_id: str) -> Iterator[tuple[str, str]]:
    """ErrorInfo metadata, most useful first (entries are dropped from the end when space runs out)."""
    if request_id:
        yield "request_id", request_id
    if error.toloka_code:
        yield "toloka_code", error.toloka_code
    if error.toloka_request_id:
        yield "toloka_request_id", error.toloka_request_id
    yield from error.metadata.items()


def _error_info(
    error: errors.GatewayError, request_id: str, omitted: dict[str, int]
) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo(reason=cut(error.reason, _REASON_CHARS), domain=DOMAIN)
    for key, count in omitted.items():
        info.metadata[key] = str(count)
    used = sum(len(k) + len(v) + _ENTRY_OVERHEAD for k, v in info.metadata.items())
    for raw_key, raw_value in _metadata_entries(error, request_id):
        key, value = cut(raw_key, _KEY_CHARS), cut(str(raw_value), _VALUE_CHARS)
        size = len(key.encode()) + len(value.encode()) + _ENTRY_OVERHEAD
        if key not in info.metadata and used + size <= _ERROR_INFO_BYTES:
            info.metadata[key] = value
            used += size
    return info


def _fitting(items: Sequence[T], build: Callable[[T], Message], room: int) -> tuple[list[Message], int]:
    """Messages built from the leading `items` that fit in `room` bytes (at most _MAX_VIOLATIONS of
    them), and how many items were left out."""
    kept: list[Message] = []
    for item in items[:_MAX_VIOLATIONS]:
        message = build(item)
        room -= message.ByteSize() + _ENTRY_OVERHEAD
        if room < 0:
            break
        kept.append(message)
    return kept, len(items) - len(kept)


def _violation(v: errors.FieldViolation) -> Message:
    built: Message = error_details_pb2.BadRequest.FieldViolation(
        field=cut(v.field, _FIELD_CHARS),
        description=cut(v.description, _DESCRIPTION_CHARS),
        reason=cut(v.reason, _REASON_CHARS),
    )
    return built


def _quota_violation(q: errors.QuotaViolation) -> Message:
    built: Message = error_details_pb2.QuotaFailure.Violation(
        subject=cut(q.subject, _VALUE_CHARS), description=cut(q.description, _DESCRIPTION_CHARS)
    )
    return built


def _quota_failure(error: errors.GatewayError) -> tuple[Message | None, int]:
    if not isinstance(error, errors.RateLimited) or not error.quota:
        return None, 0
    kept, left_out = _fitting(error.quota, _quota_violation, _QUOTA_FAILURE_BYTES)
    return error_details_pb2.QuotaFailure(violations=kept), left_out


def _retry_info(error: errors.GatewayError) -> error_details_pb2.RetryInfo | None:
    if error.retry_after is None and not isinstance(error, errors.Unavailable):
        return None
    delay = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_S
    if not math.isfinite(delay):
        delay = DEFAULT_RETRY_S
    return error_details_pb2.RetryInfo(retry_delay=_duration(min(max(delay, 0.0), _MAX_RETRY_S)))


def to_status(error: errors.GatewayError, *, request_id: str = "") -> status_pb2.Status:
    """A google.rpc.Status carrying the error's details, at most MAX_DETAILS_BYTES serialized."""
    code = getattr(code_pb2, grpc_code(error).name)
    status = status_pb2.Status(code=code, message=cut_message(error.message))
    quota, quota_left_out = _quota_failure(error)
    tail = [_pack(d) for d in (_retry_info(error), quota) if d is not None]
    # The violations get what the other parts leave, each of those counted at its largest.
    room = MAX_DETAILS_BYTES - status.ByteSize() - 2 * _ANY_OVERHEAD - _ERROR_INFO_BYTES - _SLACK
    room -= len(cut(error.reason, _REASON_CHARS).encode())
    room -= sum(d.ByteSize() + _ENTRY_OVERHEAD for d in tail)
    kept, left_out = _fitting(error.violations, _violation, room)
    omitted = {OMITTED_VIOLATIONS: left_out, OMITTED_QUOTA_VIOLATIONS: quota_left_out}
    status.details.append(_pack(_error_info(error, request_id, {k: n for k, n in omitted.items() if n})))
    if kept:
        status.details.append(_pack(error_details_pb2.BadRequest(field_violations=kept)))
    status.details.extend(tail)
    if status.ByteSize() > MAX_DETAILS_BYTES:  # not expected; keeps the bound unconditional
        del status.details[1:]
    return status


@dataclass(frozen=True)
class Trailers:
    """What an aborted call sends: code, grpc-message and trailing metadata (details included)."""

    code: grpc.StatusCode
    message: str
    metadata: tuple[tuple[str, str | bytes], ...]


def to_trailers(error: errors.GatewayError, *, request_id: str = "") -> Trailers:
    """The status, details and mesh metadata to abort a call with."""
    status = to_status(error, request_id=request_id)
    metadata: tuple[tuple[str, str | bytes], ...] = ((DETAILS_KEY, status.SerializeToString()),)
    if isinstance(error, errors.RateLimited):
        metadata += (ENVOY_RATELIMITED,)
    return Trailers(grpc_code(error), status.message, metadata)
