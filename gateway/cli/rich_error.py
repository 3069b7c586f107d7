"""A failed gRPC call, printed for people: status code, message and each google.rpc detail."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


def status_of(error: grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc.Status of the error's trailer, or None."""
    if not isinstance(error, grpc.Call):
        return None
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except ValueError:  # a trailer that disagrees with the status line
        return None
    return status


def _seconds(d: object) -> float:
    return float(getattr(d, "seconds", 0)) + float(getattr(d, "nanos", 0)) / 1e9


def detail_lines(status: status_pb2.Status) -> list[str]:
    """One or more readable lines per detail of a google.rpc.Status."""
    lines: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            lines.append(f"reason: {info.reason} (domain {info.domain})")
            lines.extend(f"  {key}: {info.metadata[key]}" for key in sorted(info.metadata))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                reason = f" [{v.reason}]" if v.reason else ""
                lines.append(f"field {v.field}: {v.description}{reason}")
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            lines.append(f"retry after: {_seconds(retry.retry_delay):.1f} s")
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = error_details_pb2.QuotaFailure()
            detail.Unpack(quota)
            lines.extend(f"quota {v.subject}: {v.description}" for v in quota.violations)
        else:
            lines.append(f"detail {detail.TypeName()}")
    return lines


def describe(error: grpc.RpcError) -> str:
    """`CODE: message` and the details, one per indented line."""
    head = f"{error.code().name}: {error.details()}" if isinstance(error, grpc.Call) else str(error)
    status = status_of(error)
    lines = detail_lines(status) if status is not None else []
    return "\n".join([head, *(f"  {line}" for line in lines)])
