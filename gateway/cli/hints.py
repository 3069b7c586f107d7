"""The fix to suggest after a failed call, where there is an obvious one."""

from __future__ import annotations

import argparse

import grpc
from google.rpc import error_details_pb2

from gateway.cli.rich_error import status_of


def _field_violations(error: grpc.RpcError) -> list[str]:
    status = status_of(error)
    fields: list[str] = []
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


def hint(error: grpc.RpcError, args: argparse.Namespace) -> str | None:
    """One line naming the fix, or None."""
    if not isinstance(error, grpc.Call):
        return None
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE and "connect" in (error.details() or ""):
        return (
            f"no gateway answers at {args.target}: start one with `make run` (in the repository) or "
            "`toloka-gateway serve`, or point --target / GATEWAY_TARGET at a running one"
        )
    if code == grpc.StatusCode.INVALID_ARGUMENT and any(
        f.endswith(".overlap") for f in _field_violations(error)
    ):
        return (
            'tasks without overlap: give each task an "overlap", or pass --allow-defaults to take the '
            "pool's default overlap"
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within --timeout {args.timeout:g} s: pass a longer --timeout"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return "this gateway wants a caller token: pass --token or set GATEWAY_TOKEN (or use --tls-cert/--tls-key)"
    return None
