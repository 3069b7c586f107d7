"""The passthrough: any `/api/v1` request, sent through the one choke point and relayed back.

The body is read (bounded by the configured size: a request must be re-sendable after a retryable
failure), checked to be JSON, and sent with the gateway's key; the caller's headers are not sent on.
Toloka's answer comes back with its status and body; a 2xx body is streamed chunk by chunk.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from gateway import errors
from gateway.call import Call
from gateway.request_kinds import KIND_POOL_ACTION, KIND_UPDATE_POOL
from gateway.rest.pool_updates import pool_update_kind
from gateway.rest.relay_protocol import Relay
from gateway.rest.routes import API_ROOT, Route, classify, pools_named
from gateway.rest.shared_paths import SharedPaths, create_tasks_request, operation_id_of
from gateway.toloka.request import Idempotency, Reply, TolokaRequest

log = logging.getLogger(__name__)

# Methods that may be re-sent after Toloka may have acted: idempotent by HTTP, plus the pool
# actions (opening an open pool changes nothing). Any other POST or PATCH is never re-sent blind.
_REPEATABLE_METHODS = frozenset({"GET", "PUT", "DELETE"})
FORWARDED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def parse_body(raw: bytes) -> Any:
    """The JSON body (None when empty), or InvalidArgument naming what is wrong."""
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise errors.InvalidArgument(
            f"the request body is not JSON: {e.msg} (line {e.lineno}, column {e.colno})",
            reason="BODY_NOT_JSON",
        ) from None


def check_pools(call: Call, tail: str, query: dict[str, str], body: Any) -> None:
    """PermissionDenied when a caller limited to some pools names none, or one it may not use."""
    if call.pools is None:
        return
    named = pools_named(tail, query, body)
    denied = sorted(named - call.pools)
    if not named or denied:
        what = f"pool(s) {', '.join(denied[:5])}" if denied else "requests that name no pool"
        raise errors.PermissionDenied(
            f"caller {call.caller!r} may not use {what}",
            reason="POOL_NOT_ALLOWED",
            metadata={"caller": call.caller},
        )


def toloka_request(request: web.Request, route: Route, tail: str, raw: bytes) -> TolokaRequest:
    """The request to send: the caller's method, path (as encoded) and query, and body."""
    query = request.rel_url.raw_query_string
    repeatable = request.method in _REPEATABLE_METHODS or route.kind == KIND_POOL_ACTION
    return TolokaRequest(
        kind=route.kind,
        method=request.method,
        path=tail + (f"?{query}" if query else ""),
        body=raw if raw.strip() else None,
        cost=route.cost,
        idempotency=Idempotency(resend_after_acted=repeatable),
        relay=True,
    )


async def relay_answer(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Write Toloka's answer to the caller, streaming a body still in the connection."""
    relayed = reply.relayed
    assert relayed is not None
    try:
        if relayed.body is not None:
            return web.Response(status=relayed.status, body=relayed.body, headers=relayed.headers)
        response = web.StreamResponse(status=relayed.status, headers=relayed.headers)
        await response.prepare(request)
        try:
            async for chunk in relayed.chunks():
                await response.write(chunk)
            await response.write_eof()
        except (OSError, aiohttp.ClientError, TimeoutError) as e:
            # Toloka or the caller went away mid-body: cut the caller's connection, so a truncated
            # body never looks whole.
            log.info("relayed body cut: %s", type(e).__name__, extra={"status": relayed.status})
            if request.transport is not None:
                request.transport.close()
        return response
    finally:
        relayed.release()


async def _shared_answer(
    request: web.Request, call: Call, shared: SharedPaths, tail: str, body: Any
) -> web.StreamResponse | None:
    """The answer of the gateway's own use case, for a request gRPC also serves; else None."""
    operation_id = operation_id_of(request.method, tail)
    if operation_id is not None:
        return await shared.operation(operation_id, call)
    query = dict(request.query)
    if request.method == "POST" and tail == "/tasks":
        req = create_tasks_request(query, body)
        if req is not None:
            check_pools(call, tail, query, body)
            return await shared.create_tasks(req, body, call)
    if request.method == "POST" and tail == "/task-suites" and query.get("operation_id"):
        check_pools(call, tail, query, body)
        raw_query = request.rel_url.raw_query_string
        return await shared.create_suites(f"{tail}?{raw_query}", query, await request.read(), body, call)
    return None


async def passthrough(
    request: web.Request, call: Call, toloka: Relay, shared: SharedPaths
) -> web.StreamResponse:
    """Answer one `/api/v1` request: from a shared use case, or relayed to Toloka through the choke point."""
    raw_path = request.rel_url.raw_path
    tail = raw_path[len(API_ROOT) :]
    raw = await request.read() if request.body_exists else b""
    body = parse_body(raw)
    answer = await _shared_answer(request, call, shared, tail, body)
    if answer is not None:
        return answer
    route = classify(request.method, tail, body)
    check_pools(call, tail, dict(request.query), body)
    if request.method == "PUT" and route.kind == KIND_UPDATE_POOL:
        route = replace(route, kind=await pool_update_kind(toloka, tail, body, call))
    reply = await toloka.relay(toloka_request(request, route, tail, raw), call)
    return await relay_answer(request, reply)
