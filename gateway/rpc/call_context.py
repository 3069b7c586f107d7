"""The `Call` a gRPC call gets: its deadline (gRPC's and the mesh's), the mesh's request id, and the
request's memory reservation."""

from __future__ import annotations

import re
import time
from typing import Any

import grpc

from gateway.call import Call
from gateway.rpc.incoming import Incoming

Context = grpc.aio.ServicerContext[Any, Any]

# Answer this much before the RPC deadline, so a wait that runs out of time still gets its reply out.
DEADLINE_MARGIN_S = 0.05
# Envoy sends the per-try timeout of a call here; the mesh cuts the try when it passes, so every wait
# must end before it, just as before the gRPC deadline.
MESH_TIMEOUT_KEY = "x-envoy-expected-rq-timeout-ms"
_MILLISECONDS = re.compile(r"[0-9]{1,12}")
# Envoy gives every request an id and keeps it across its retries of that request.
MESH_REQUEST_ID_KEY = "x-request-id"
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def mesh_timeout_s(context: Context) -> float | None:
    """The mesh's per-try timeout in seconds, or None when absent, malformed or not positive."""
    for key, value in context.invocation_metadata() or ():
        if key == MESH_TIMEOUT_KEY and isinstance(value, str):
            text = value.strip()
            return int(text) / 1000 if _MILLISECONDS.fullmatch(text) and int(text) > 0 else None
    return None


def mesh_request_id(context: Context) -> str:
    """The mesh's id of this request (the same on each of its retries), or "" when absent or odd."""
    for key, value in context.invocation_metadata() or ():
        if key == MESH_REQUEST_ID_KEY and isinstance(value, str):
            return value if _REQUEST_ID.fullmatch(value) else ""
    return ""


def new_call(context: Context, incoming: Incoming[Any] | None) -> Call:
    """The call's context before the caller is known: its deadline, the mesh's request id, and
    the request's memory reservation (work that outlives the call may take it over). A request
    stream has no one request: `incoming` is None, and its deadline counts from now."""
    call = Call(
        caller="unidentified",
        deadline=call_deadline(context, None if incoming is None else incoming.received_at),
        retry_key=mesh_request_id(context),
    )
    if incoming is not None and incoming.reservation is not None:
        call.held.append(incoming.reservation)
    return call


def call_deadline(context: Context, received_at: float | None = None) -> float | None:
    """The call's absolute deadline: the earlier of the gRPC deadline and the mesh's per-try timeout,
    less a margin to get the answer out.

    The per-try timeout counts from `received_at` (the message had arrived; decoding a large one
    takes a while) when given: the mesh's timer was running by then.
    """
    mesh = mesh_timeout_s(context)
    if mesh is not None and received_at is not None:
        mesh -= time.monotonic() - received_at
    limits = [t for t in (context.time_remaining(), mesh) if t is not None]
    if not limits:
        return None
    remaining = min(limits)
    return time.monotonic() + remaining - min(DEADLINE_MARGIN_S, max(remaining, 0.0) * 0.1)
