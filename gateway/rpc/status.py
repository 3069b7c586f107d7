"""The ONLY map from domain errors to gRPC statuses with google.rpc details.

Every error carries ErrorInfo (domain "toloka-gateway", reason, and in metadata Toloka's code
and request id when Toloka said something). Validation errors add BadRequest field
violations; quota refusals add QuotaFailure, and RetryInfo when waiting can help (a request that can
never fit its quota gets none, so clients that honour RetryInfo do not retry it forever); transient
failures add RetryInfo.
"""

from __future__ import annotations

import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from gateway import errors

DOMAIN = "toloka-gateway"
DEFAULT_RETRY_S = 1.0  # RetryInfo for a transient failure that named no delay

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


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def to_status(error: errors.GatewayError, *, request_id: str = "") -> status_pb2.Status:
    """A google.rpc.Status carrying the error's details."""
    code = grpc_code(error)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message)
    metadata = dict(error.metadata)
    if error.toloka_code:
        metadata["toloka_code"] = error.toloka_code
    if error.toloka_request_id:
        metadata["toloka_request_id"] = error.toloka_request_id
    if request_id:
        metadata["request_id"] = request_id
    status.details.append(
        _pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata))
    )
    if error.violations:
        bad = error_details_pb2.BadRequest()
        for v in error.violations:
            bad.field_violations.add(field=v.field, description=v.description, reason=v.reason)
        status.details.append(_pack(bad))
    if error.retry_after is not None or isinstance(error, errors.Unavailable):
        delay = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_S
        status.details.append(_pack(error_details_pb2.RetryInfo(retry_delay=_duration(delay))))
    if isinstance(error, errors.RateLimited) and error.quota:
        failure = error_details_pb2.QuotaFailure()
        for q in error.quota:
            failure.violations.add(subject=q.subject, description=q.description)
        status.details.append(_pack(failure))
    return status
