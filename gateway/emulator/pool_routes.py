"""Handlers for `/api/v1/pools/{id}`: GET, PUT (full replace), PATCH (priority), and state changes.

Choices where Toloka is undocumented:
- PUT on an OPEN or ARCHIVED pool → 409 `INAPPROPRIATE_STATUS`, `payload.appropriate_statuses: ["CLOSED"]`.
- PUT that changes overlap parameters (a default overlap or any CHANGE_OVERLAP rule) more than
  `overlap_changes_per_hour` times in a sliding hour for one pool → 429 `TOO_MANY_REQUESTS`
  (no `Retry-After`, no `payload.interval`).
- A state change while another POOL.* operation of the same pool is still running → 409
  `POOL_LOCKED_BY_ANOTHER_OPERATION`.
- archive on an OPEN pool → 409 `INAPPROPRIATE_STATUS` (`appropriate_statuses: ["CLOSED"]`).
- close-for-update: the real server reopens the pool by itself after 15 minutes if nobody reopened it;
  emulated lazily (`reopen_after_update_s`, default 900 s) and cancelled by any other status change.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.emulator.batch_create import read_json
from gateway.emulator.operations import Operation
from gateway.emulator.pools import overlap_signature, replaced_pool, validate_pool_body
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.wire import JSON, ApiError, field_error, json_response, not_found, validation_error

_HOUR_S = 3600.0


def _pool(state: EmulatorState, pool_id: str) -> JSON:
    state.advance()
    pool = state.pools.get(pool_id)
    if pool is None:
        raise not_found(f"Pool {pool_id}")
    return pool


def _inappropriate(status: str, allowed: list[str]) -> ApiError:
    return ApiError(
        409,
        "INAPPROPRIATE_STATUS",
        f"This or related resource is in inappropriate status ({status}), operation is not allowed",
        {"appropriate_statuses": allowed},
    )


async def get_pool(request: web.Request) -> web.Response:
    """`GET /api/v1/pools/{id}`."""
    return json_response(_pool(request.app[STATE_KEY], request.match_info["pool_id"]))


async def put_pool(request: web.Request) -> web.Response:
    """`PUT /api/v1/pools/{id}`: replace every writable field; read-only fields in the body are ignored."""
    state = request.app[STATE_KEY]
    pool_id = request.match_info["pool_id"]
    pool = _pool(state, pool_id)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation_error({"body": field_error("OBJECT_EXPECTED", "Pool object expected")})
    if pool["status"] != "CLOSED":
        raise _inappropriate(pool["status"], ["CLOSED"])
    errors = validate_pool_body(body)
    if errors:
        raise validation_error(errors)
    new = replaced_pool(pool, body)
    if overlap_signature(new) != overlap_signature(pool):
        _count_overlap_change(state, pool_id)
    state.pools[pool_id] = new
    return json_response(new)


def _count_overlap_change(state: EmulatorState, pool_id: str) -> None:
    now = state.now()
    recent = [t for t in state.overlap_changes.get(pool_id, []) if t > now - _HOUR_S]
    if len(recent) >= state.overlap_changes_per_hour:
        state.overlap_changes[pool_id] = recent
        raise ApiError(
            429,
            "TOO_MANY_REQUESTS",
            f"Too many overlap changes: at most {state.overlap_changes_per_hour} per hour for a pool",
        )
    recent.append(now)
    state.overlap_changes[pool_id] = recent


async def patch_pool(request: web.Request) -> web.Response:
    """`PATCH /api/v1/pools/{id}`: only `{"priority": 0..100}`; 409 with an empty body when ARCHIVED."""
    state = request.app[STATE_KEY]
    pool = _pool(state, request.match_info["pool_id"])
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation_error({"body": field_error("OBJECT_EXPECTED", "Object expected")})
    errors = {
        key: field_error("VALUE_NOT_ALLOWED", "Only priority can be patched")
        for key in body
        if key != "priority"
    }
    priority = body.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 100:
        errors["priority"] = field_error("VALUE_NOT_ALLOWED", "priority must be an integer in 0..100")
    if errors:
        raise validation_error(errors)
    if pool["status"] == "ARCHIVED":
        raise ApiError(409, "INAPPROPRIATE_STATUS", "archived", empty_body=True)
    pool["priority"] = priority
    return json_response(pool)


def _pool_action(kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        pool_id = request.match_info["pool_id"]
        pool = _pool(state, pool_id)
        status = pool["status"]
        target = {"open": "OPEN", "archive": "ARCHIVED"}.get(kind, "CLOSED")
        if status == "ARCHIVED" and kind != "archive":
            raise _inappropriate(status, ["OPEN", "CLOSED"])
        if pool_id in state.pool_locks:
            raise ApiError(
                409,
                "POOL_LOCKED_BY_ANOTHER_OPERATION",
                f"Pool {pool_id} is locked by operation {state.pool_locks[pool_id]}",
            )
        if status == target:
            return web.Response(status=204)
        if kind == "archive" and status != "CLOSED":
            raise _inappropriate(status, ["CLOSED"])
        if kind == "open" and not state.pool_has_tasks(pool_id):
            raise ApiError(409, "EMPTY_POOL", "Pool contains no tasks. Operation is not allowed")
        op = _start_pool_operation(state, pool_id, kind, target)
        state.advance()
        return json_response(op.view(state.now()), 202)

    handler.__name__ = f"pool_{kind.replace('-', '_')}"
    handler.__doc__ = f"`POST /api/v1/pools/{{id}}/{kind}`: 202 Operation, or 204 when already there."
    return handler


def _start_pool_operation(state: EmulatorState, pool_id: str, kind: str, target: str) -> Operation:
    op_type = {"open": "POOL.OPEN", "archive": "POOL.ARCHIVE"}.get(kind, "POOL.CLOSE")
    op = Operation(
        id=str(uuid.uuid4()),
        type=op_type,
        submitted_at=state.now(),
        duration_s=state.pool_operation_duration_s,
        parameters={"pool_id": pool_id},
    )

    def finish() -> None:
        state.pool_locks.pop(pool_id, None)
        pool = state.pools.get(pool_id)
        if pool is None:
            return
        pool["status"] = target
        stamp = state.timestamp()
        if target == "OPEN":
            pool["last_started"] = stamp
            state.work_changed(pool_id)
        else:
            pool["last_stopped"] = stamp
            pool["last_close_reason"] = "FOR_UPDATE" if kind == "close-for-update" else "MANUAL"
        if kind == "close-for-update":
            _schedule_reopen(state, pool_id, op.id)
        state.last_status_change[pool_id] = op.id

    op.on_finish = finish
    state.pool_locks[pool_id] = op.id
    state.add_operation(op)
    return op


def _schedule_reopen(state: EmulatorState, pool_id: str, op_id: str) -> None:
    def reopen() -> None:
        pool = state.pools.get(pool_id)
        if pool is not None and state.last_status_change.get(pool_id) == op_id and pool["status"] == "CLOSED":
            pool["status"] = "OPEN"
            pool["last_started"] = state.timestamp()
            state.last_status_change[pool_id] = "auto-reopen"
            state.work_changed(pool_id)

    state.schedule(state.now() + state.reopen_after_update_s, reopen)


pool_open = _pool_action("open")
pool_close = _pool_action("close")
pool_close_for_update = _pool_action("close-for-update")
pool_archive = _pool_action("archive")
